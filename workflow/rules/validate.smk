# Errors of each fitted trial on its validation fold; of the best potential on the test set.
# A validation killed from outside is retried, and its last attempt records the trial as
# failed (see potune.steps.validate.validate_step).


rule validate:
    input:
        fit=rules.fit.output.result,
        model=rules.fit.output.model,
        valid=f"{R}/split/fold{{fold}}/valid.xyz",
    output:
        result=f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/valid.json",
        predictions=f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/valid_predictions.npz",
    log:
        f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/validate.log",
    # like fit: a job killed from outside (a segfault of quippy/LAMMPS in this process, the
    # OOM killer) is retried; its last attempt records the trial as failed
    retries: RES["validate"]["retries"] + 1
    conda:
        f"../../envs/{FITTER}.yaml"
    threads: RES["validate"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: job_mem_mb("validate", None, None, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["validate"], attempt),
        attempt=lambda wc, attempt: attempt,
        max_attempts=RES["validate"]["retries"] + 2,
    params:
        fitter=FITTER,
        loss=C["loss"],
        fold_label=lambda wc: f"fold {wc.fold}/{NF}" if NF > 1 else "",
    script:
        "../../scripts/validate.py"


rule test_errors:
    input:
        model=rules.refit.output.model,
        test=f"{R}/split/test.xyz",
    output:
        errors=f"{R}/best/test_errors.csv",
        predictions=f"{R}/best/test_predictions.npz",
        metrics=f"{R}/best/test_metrics.json",
    log:
        f"{R}/logs/test_errors.log",
    # a failed refit or test (the fitter cannot predict; killed from outside on every
    # attempt but the last) is recorded in test_metrics.json (status failed)
    retries: RES["validate"]["retries"] + 1
    conda:
        f"../../envs/{FITTER}.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: job_mem_mb("validate", None, None, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["validate"], attempt),
        attempt=lambda wc, attempt: attempt,
        max_attempts=RES["validate"]["retries"] + 2,
    params:
        cfg={k: C[k] for k in ("fitter", "loss", "reference")},
    script:
        "../../scripts/test_errors.py"
