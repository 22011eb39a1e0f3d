"""Rule `summary`: summary.md of the run."""

from potune.console import logged
from potune.steps.report import summary_step

with logged(snakemake.log[0], "w"):
    summary_step(
        snakemake.params.cfg,
        dict(snakemake.input.items()),
        snakemake.output.md,
        cores=snakemake.resources.driver_cores or None,
    )
