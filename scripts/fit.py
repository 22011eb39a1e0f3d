"""Rule `fit`: fit one trial on one fold (a failed fit is recorded, not raised)."""

from potune.steps.fit import fit_step

attempt = int(snakemake.resources.attempt)
fit_step(
    snakemake.input.params,
    snakemake.input.train,
    snakemake.output.model,
    snakemake.output.result,
    snakemake.log[0],
    snakemake.params.fitter,
    snakemake.params.settings,
    threads=snakemake.threads,
    mem_mb=snakemake.resources.mem_mb,
    runtime_min=snakemake.resources.runtime_ms / 60000.0,
    attempt=attempt,
    max_attempts=snakemake.resources.max_attempts,
    descriptors=snakemake.input.get("descriptors"),
    valid_file=snakemake.input.get("valid"),
)
