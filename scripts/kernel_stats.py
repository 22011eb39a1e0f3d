"""Rule `kernel_stats`: kernel statistics of one stage-1 descriptor trial (no fit)."""

from potune.console import logged
from potune.steps.stage1 import kernel_step

with logged(snakemake.log[0], "w"):
    kernel_step(
        snakemake.input.params,
        snakemake.input.train,
        snakemake.output.result,
        snakemake.output.hist,
        snakemake.params.settings,
        snakemake.params.kernel,
        attempt=int(snakemake.resources.attempt),
        max_attempts=snakemake.resources.max_attempts,
    )
