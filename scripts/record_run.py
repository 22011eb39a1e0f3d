"""Rule `record_run`: the resolved config and the exact package versions of this run."""

from potune.console import logged
from potune.steps.report import record_run

with logged(snakemake.log[0], "w"):
    record_run(snakemake.params.cfg, snakemake.output.config, snakemake.output.versions)
