"""Rule `validate`: errors of one fitted trial on its validation fold."""

from potune.console import logged
from potune.steps.validate import validate_step

with logged(snakemake.log[0], "w"):
    validate_step(
        snakemake.input.fit,
        snakemake.input.model,
        snakemake.input.valid,
        snakemake.output.result,
        snakemake.params.fitter,
        snakemake.params.loss,
        predictions_file=snakemake.output.predictions,
        attempt=int(snakemake.resources.attempt),
        max_attempts=snakemake.resources.max_attempts,
        fold_label=snakemake.params.fold_label,
        mem_mb=snakemake.resources.mem_mb,
        runtime_min=snakemake.resources.runtime,
    )
