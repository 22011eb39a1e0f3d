# One fit job per trial and fold, and the final refit of the best hyperparameters.
# Memory: estimated per proposal (resources.fit.mem_mb: auto) or fixed; memory and runtime
# grow with the attempt number. A fit that fails inside (crash, over its limits) records a
# failed trial and ends normally; a job killed from outside is retried, and its last attempt
# records the trial as failed (see potune.steps.fit.fit_step).


rule fit:
    input:
        unpack(fit_extra_inputs),  # descriptors.smk: the SNAP descriptor cache; nothing for gap
        params=f"{R}/iter{{iteration}}/proposals/{{trial}}.yaml",
        train=f"{R}/split/fold{{fold}}/train.xyz",
    output:
        result=f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/fit.json",
        model=directory(f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/model"),
    log:
        f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/fit.log",
    retries: RES["fit"]["retries"] + 1
    conda:
        f"../../envs/{FITTER}.yaml"
    threads: RES["fit"]["threads"]
    # resources, not params: changing them must not re-run finished fits
    resources:
        mem_mb=lambda wc, input, attempt: job_mem_mb("fit", input.params, input.train, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["fit"], attempt),
        runtime_ms=lambda wc, attempt: runtime_ms(RES["fit"], attempt),
        attempt=lambda wc, attempt: attempt,
        max_attempts=RES["fit"]["retries"] + 2,
    params:
        fitter=FITTER,
        settings=FIT_SETTINGS,
    script:
        "../../scripts/fit.py"


checkpoint best_params:
    input:
        table=rules.trials_table.output.table,
    output:
        best=f"{R}/best/best.yaml",
        predictions=f"{R}/best/valid_predictions.npz",
    log:
        f"{R}/logs/best_params.log",
    conda:
        "../../envs/potune.yaml"
    params:
        cfg=SEARCH,
    script:
        "../../scripts/best_params.py"


rule refit:
    input:
        best=rules.best_params.output.best,
        train=f"{R}/split/full_train.xyz",
    output:
        result=f"{R}/best/fit.json",
        model=directory(f"{R}/best/potential"),
    log:
        f"{R}/best/fit.log",
    # a failed refit is recorded in fit.json (status failed), like a trial's fit; summary.md says so
    retries: RES["refit"]["retries"] + 1
    conda:
        f"../../envs/{FITTER}.yaml"
    threads: RES["refit"]["threads"]
    resources:
        mem_mb=lambda wc, input, attempt: job_mem_mb("refit", input.best, input.train, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["refit"], attempt),
        runtime_ms=lambda wc, attempt: runtime_ms(RES["refit"], attempt),
        attempt=lambda wc, attempt: attempt,
        max_attempts=RES["refit"]["retries"] + 2,
    params:
        fitter=FITTER,
        settings=FIT_SETTINGS,
    script:
        "../../scripts/refit.py"
