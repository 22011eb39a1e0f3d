"""Checkpoint `propose`: the next batch of trials, one file each."""
from potune.steps import logged, propose_step

with logged(snakemake.log[0], "w"):
    propose_step(
        dict(snakemake.params.items()),
        int(snakemake.wildcards.iteration),
        snakemake.input.table[0] if snakemake.input.table else None,
        snakemake.output.proposals,
    )
