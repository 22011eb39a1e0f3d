# One fit job per trial and fold, and the final refit of the best hyperparameters.


rule fit:
    input:
        params=f"{R}/iter{{iteration}}/proposals/{{trial}}.yaml",
        train=f"{R}/split/fold{{fold}}/train.xyz",
    output:
        result=f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/fit.json",
        model=directory(f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/model"),
    log:
        f"{R}/iter{{iteration}}/{{trial}}/fold{{fold}}/fit.log",
    params:
        fitter=FITTER,
        settings=C.get(FITTER, {}),
    threads: RES["fit"]["threads"]
    resources:
        mem_mb=RES["fit"]["mem_mb"],
        runtime=RES["fit"]["runtime"],
    conda:
        f"../../envs/{FITTER}.yaml"
    script:
        "../../scripts/fit.py"


rule best_params:
    input:
        table=rules.trials_table.output.table,
    output:
        best=f"{R}/best/best.yaml",
        predictions=f"{R}/best/valid_predictions.npz",
    log:
        f"{R}/logs/best_params.log",
    params:
        cfg=C,
    conda:
        "../../envs/potune.yaml"
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
    params:
        fitter=FITTER,
        settings=C.get(FITTER, {}),
    threads: RES["refit"]["threads"]
    resources:
        mem_mb=RES["refit"]["mem_mb"],
        runtime=RES["refit"]["runtime"],
    conda:
        f"../../envs/{FITTER}.yaml"
    script:
        "../../scripts/refit.py"
