# Stage 1 of strategy two_stage with stage1.objective: proxy: each descriptor trial is scored
# by a low-fidelity GAP fit (the ordinary `fit` and `validate` jobs, under R/stage1/): trained
# on a seeded subset of fold 0's training structures (`proxy_train`) with stage1.proxy's
# n_sparse, delta, sigmas and energy_only, validated on fold 0's validation structures.
# Which result file the stage-1 loop waits for (valid.json or kernel.json): twostage_common.smk.


rule proxy_train:
    input:
        train=f"{R}/split/fold0/train.xyz",
    output:
        train=f"{S1}/proxy/train.xyz",
    log:
        f"{R}/logs/stage1/proxy_train.log",
    conda:
        "../../envs/potune.yaml"
    params:
        max_structures=C["stage1"]["proxy"]["max_structures"],
        seed=C["stage1"]["proxy"]["seed"],
        always_train=C["split"]["always_train"],
    script:
        "../../scripts/proxy_train.py"


use rule fit as proxy_fit with:
    input:
        params=f"{S1}/iter{{iteration}}/proposals/{{trial}}.yaml",
        train=rules.proxy_train.output.train,
    output:
        result=f"{S1}/iter{{iteration}}/{{trial}}/fit.json",
        model=directory(f"{S1}/iter{{iteration}}/{{trial}}/model"),
    log:
        f"{S1}/iter{{iteration}}/{{trial}}/fit.log",
    params:
        fitter=FITTER,
        settings=PROXY_SETTINGS,


use rule validate as proxy_validate with:
    input:
        fit=rules.proxy_fit.output.result,
        model=rules.proxy_fit.output.model,
        valid=f"{R}/split/fold0/valid.xyz",
    output:
        result=f"{S1}/iter{{iteration}}/{{trial}}/{PROXY_RESULT}",
        predictions=f"{S1}/iter{{iteration}}/{{trial}}/valid_predictions.npz",
    log:
        f"{S1}/iter{{iteration}}/{{trial}}/validate.log",
    params:
        fitter=FITTER,
        loss=C["loss"],
        fold_label="(stage-1 proxy fit)",
