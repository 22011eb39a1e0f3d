"""Rule `best_params`: the best trial's hyperparameters."""

from potune.console import logged
from potune.steps.best import best_step

with logged(snakemake.log[0], "w"):
    best_step(snakemake.params.cfg, snakemake.input.table, snakemake.output.best, snakemake.output.predictions)
