"""Rule `refit`: the best hyperparameters fitted on the whole training set (a failure is recorded)."""

from potune.steps.fit import refit_step

refit_step(
    snakemake.input.best,
    snakemake.input.train,
    snakemake.output.model,
    snakemake.output.result,
    snakemake.log[0],
    snakemake.params.fitter,
    snakemake.params.settings,
    threads=snakemake.threads,
    mem_mb=snakemake.resources.mem_mb,
    runtime_min=snakemake.resources.runtime_ms / 60000.0,
    attempt=int(snakemake.resources.attempt),
    max_attempts=snakemake.resources.max_attempts,
)
