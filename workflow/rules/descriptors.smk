# SNAP descriptor cache: the bispectrum matrix of a fold's training data depends only on the
# descriptor hyperparameters (rcutfac, twojmax, rfac0, rmin0, radelem, wj, quadratic), not on
# the group weights or the solver. Each distinct set is computed once, by rule `descriptors`,
# in descriptors/fold<f>/<key> (key: hash of the descriptor hyperparameters and the data);
# every trial sharing it only re-solves the weighted least squares in rule `fit`. In a
# nested search (snap.nested) the cache also holds the validation fold's blocks, on which
# each fit job's inner search measures the validation loss of its weights; with
# snap.inner.folds > 1, the cross-validation blocks of the training structures instead.
# For other fitters (gap) `fit_extra_inputs` returns nothing and no job of this file runs.


rule descriptors:
    input:
        unpack(descriptors_inputs),
    output:
        cache=directory(f"{R}/descriptors/fold{{fold}}/{{key}}"),
    log:
        f"{R}/logs/descriptors/fold{{fold}}/{{key}}.log",
    wildcard_constraints:
        key=r"[0-9a-f]{16}",
    # like fit: a job killed from outside is retried, and its last attempt records the
    # failure in meta.json (every fit using this cache becomes a failed trial)
    retries: RES["fit"]["retries"] + 1
    conda:
        "../../envs/snap.yaml"
    threads: RES["fit"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: job_mem_mb("fit", None, None, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["fit"], attempt),
        attempt=lambda wc, attempt: attempt,
        max_attempts=RES["fit"]["retries"] + 2,
    params:
        **CV_PARAM,  # snap.inner.folds > 1 only (a new param would re-run older searches' caches)
        spec=descriptor_spec_for_key,
    script:
        "../../scripts/descriptors.py"
