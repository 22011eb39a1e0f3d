"""Rule `record_run`: the resolved config and the exact package versions of this run."""
from potune.steps import logged, record_run

with logged(snakemake.log[0], "w"):
    record_run(snakemake.params.cfg, snakemake.output.config, snakemake.output.versions)
