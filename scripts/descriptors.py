"""Rule `descriptors`: one SNAP descriptor cache (a failure is recorded, not raised)."""

from potune.steps.fit import descriptors_step

descriptors_step(
    snakemake.params.spec,
    snakemake.input.train,
    snakemake.output.cache,
    snakemake.log[0],
    threads=snakemake.threads,
    mem_mb=snakemake.resources.mem_mb,
    runtime_min=snakemake.resources.runtime,
    valid_file=snakemake.input.get("valid"),
    cv=snakemake.params.get("cv"),
    attempt=int(snakemake.resources.attempt),
    max_attempts=snakemake.resources.max_attempts,
)
