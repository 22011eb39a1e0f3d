"""Rule `best_descriptor`: stage 1's best SOAP hyperparameters."""

from potune.console import logged
from potune.steps.stage1 import best_descriptor_step

with logged(snakemake.log[0], "w"):
    best_descriptor_step(snakemake.params.cfg, snakemake.input.table, snakemake.output.best)
