# Errors of each fitted trial on its validation fold; of the best potential on the test set.


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
    retries: RES["validate"]["retries"]
    conda:
        f"../../envs/{FITTER}.yaml"
    threads: RES["validate"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: job_mem_mb("validate", None, None, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["validate"], attempt),
    params:
        fitter=FITTER,
        loss=C["loss"],
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
    retries: RES["validate"]["retries"]
    conda:
        f"../../envs/{FITTER}.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: job_mem_mb("validate", None, None, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["validate"], attempt),
    params:
        cfg={k: C[k] for k in ("fitter", "loss", "reference")},
    script:
        "../../scripts/test_errors.py"
