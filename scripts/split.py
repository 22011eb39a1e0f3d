"""Rule `split`: check the data and write the train/validation folds."""

from potune.console import logged
from potune.steps.split import split

with logged(snakemake.log[0], "w"):
    split(snakemake.params.cfg, snakemake.output.summary.rsplit("/", 1)[0])
