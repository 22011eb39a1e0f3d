"""Checkpoint `propose`: decide whether the iteration runs and write its trials."""
from potune.steps import logged, propose_step

with logged(snakemake.log[0], "w"):
    propose_step(
        snakemake.params.cfg,
        int(snakemake.wildcards.iteration),
        snakemake.input.table[0] if snakemake.input.table else None,
        snakemake.output.proposals,
        first_decision=snakemake.params.first,
    )
