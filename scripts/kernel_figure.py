"""Rule `kernel_figure`: kernel distribution of the best hyperparameters' SOAP."""

from potune.console import logged
from potune.steps.stage1 import kernel_figure_step

with logged(snakemake.log[0], "w"):
    kernel_figure_step(
        snakemake.input.best,
        snakemake.input.train,
        snakemake.params.settings,
        snakemake.params.kernel,
        snakemake.output.png,
        snakemake.output.csv,
        snakemake.output.stats,
        attempt=int(snakemake.resources.attempt),
        max_attempts=snakemake.resources.max_attempts,
    )
