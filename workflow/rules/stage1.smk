# Stage 1 of the PPSO two-stage strategy (strategy: two_stage): SOAP hyperparameters and zeta
# searched by the shape of the kernel distribution of the training environments (no GAP is
# fitted), or with stage1.objective: proxy by low-fidelity GAP fits (proxy.smk). Its own
# loop: checkpoint `propose_descriptors` -> `kernel_stats` (or `proxy_fit` + `proxy_validate`)
# per trial -> `collect_descriptors`, under R/stage1/. Stage 2 is the ordinary loop (propose.smk), whose
# `propose` reads R/stage1/best.yaml and holds that descriptor fixed.
# Paths and input functions: workflow/rules/twostage_common.smk.


localrules:
    propose_descriptors,
    collect_descriptors,
    stage1_table,
    best_descriptor,
    stage1_convergence,


checkpoint propose_descriptors:
    input:
        table=s1_previous_table,
    output:
        proposals=directory(f"{S1}/iter{{iteration}}/proposals"),
    log:
        f"{R}/logs/stage1/propose/iter{{iteration}}.log",
    conda:
        "../../envs/potune.yaml"
    params:
        space=C1["space"] if TWO_STAGE else {},
        fixed=C1["fixed"] if TWO_STAGE else {},
        optimizer=C1["optimizer"] if TWO_STAGE else {},
        fitter=FITTER,
    script:
        "../../scripts/propose.py"


rule kernel_stats:
    input:
        params=f"{S1}/iter{{iteration}}/proposals/{{trial}}.yaml",
        train=f"{R}/split/full_train.xyz",
    output:
        result=f"{S1}/iter{{iteration}}/{{trial}}/kernel.json",
        hist=f"{S1}/iter{{iteration}}/{{trial}}/kernel_hist.csv",
    log:
        f"{S1}/iter{{iteration}}/{{trial}}/kernel.log",
    # a job killed from outside is retried; its last attempt records the trial as failed
    retries: RES["kernel"]["retries"] + 1
    conda:
        "../../envs/gap.yaml"
    threads: RES["kernel"]["threads"]
    resources:
        mem_mb=lambda wc, attempt: job_mem_mb("kernel", None, None, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["kernel"], attempt),
        attempt=lambda wc, attempt: attempt,
        max_attempts=RES["kernel"]["retries"] + 2,
    params:
        settings=C.get("gap", {}),
        kernel=C["kernel"],
    script:
        "../../scripts/kernel_stats.py"


checkpoint collect_descriptors:
    input:
        previous=s1_previous_table,
        proposals=lambda wc: s1_proposals_dir(wc.iteration),
        results=s1_iteration_results,
    output:
        table=f"{S1}/iter{{iteration}}/table.csv",
    log:
        f"{R}/logs/stage1/collect/iter{{iteration}}.log",
    conda:
        "../../envs/potune.yaml"
    params:
        cfg={"space": C1["space"], "fixed": C1["fixed"]} if TWO_STAGE else {},
        result=S1_RESULT,
    script:
        "../../scripts/collect_descriptors.py"


rule stage1_table:
    input:
        s1_final_table,
    output:
        table=f"{S1}/trials.csv",
        stop=f"{S1}/stop.yaml",
    log:
        f"{R}/logs/stage1/trials_table.log",
    conda:
        "../../envs/potune.yaml"
    params:
        stop=s1_stop_info,
    script:
        "../../scripts/trials_table.py"


rule best_descriptor:
    input:
        table=rules.stage1_table.output.table,
    output:
        best=f"{S1}/best.yaml",
    log:
        f"{R}/logs/stage1/best_descriptor.log",
    conda:
        "../../envs/potune.yaml"
    params:
        cfg={k: C1[k] for k in ("space", "fixed", "kernel", "stage1")} if TWO_STAGE else {},
    script:
        "../../scripts/best_descriptor.py"


rule stage1_convergence:
    input:
        table=rules.stage1_table.output.table,
    output:
        png=f"{S1}/convergence.png",
        csv=f"{S1}/convergence.csv",
    log:
        f"{R}/logs/stage1/convergence.log",
    conda:
        "../../envs/potune.yaml"
    params:
        title=f"{C['run_name']}: stage 1 ({stage1_objective(C)} objective)",
    script:
        "../../scripts/convergence.py"
