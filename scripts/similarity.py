"""Rule `similarity_curve`: dimer similarity vs interatomic distance for the best SOAP."""

from potune.console import logged
from potune.steps.stage1 import similarity_step

with logged(snakemake.log[0], "w"):
    similarity_step(
        snakemake.input.best,
        snakemake.input.train,
        snakemake.params.settings,
        snakemake.params.n_reference,
        snakemake.output.png,
        snakemake.output.csv,
        snakemake.output.status,
        attempt=int(snakemake.resources.attempt),
        max_attempts=snakemake.resources.max_attempts,
    )
