"""Rule `test_errors`: errors of the refitted best potential on the test set."""

from potune.console import logged
from potune.steps.best import test_step

with logged(snakemake.log[0], "w"):
    test_step(
        snakemake.params.cfg,
        snakemake.input.model,
        snakemake.input.test,
        snakemake.output.errors,
        snakemake.output.predictions,
        snakemake.output.metrics,
        attempt=int(snakemake.resources.attempt),
        max_attempts=snakemake.resources.max_attempts,
    )
