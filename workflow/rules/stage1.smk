# Stage 1 of the PPSO two-stage strategy (strategy: two_stage): SOAP hyperparameters and zeta
# searched by the shape of the kernel distribution of the training environments; no GAP is
# fitted. Its own loop: checkpoint `propose_descriptors` -> `kernel_stats` per trial ->
# `collect_descriptors`, under R/stage1/. Stage 2 is the ordinary loop (propose.smk), whose
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
    params:
        cfg=C1,
        first=s1_first_decision,
    conda:
        "../../envs/potune.yaml"
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
    params:
        settings=C.get("gap", {}),
        kernel=C["kernel"],
    threads: RES["kernel"]["threads"]
    resources:
        mem_mb=RES["kernel"]["mem_mb"],
        runtime=RES["kernel"]["runtime"],
    conda:
        "../../envs/gap.yaml"
    script:
        "../../scripts/kernel_stats.py"


rule collect_descriptors:
    input:
        previous=s1_previous_table,
        proposals=lambda wc: s1_proposals_dir(wc.iteration),
        results=s1_iteration_results,
    output:
        table=f"{S1}/iter{{iteration}}/table.csv",
    log:
        f"{R}/logs/stage1/collect/iter{{iteration}}.log",
    params:
        cfg=C1,
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/collect_descriptors.py"


rule stage1_table:
    input:
        s1_final_table,
    output:
        table=f"{S1}/trials.csv",
    log:
        f"{R}/logs/stage1/trials_table.log",
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/trials_table.py"


rule best_descriptor:
    input:
        table=rules.stage1_table.output.table,
    output:
        best=f"{S1}/best.yaml",
    log:
        f"{R}/logs/stage1/best_descriptor.log",
    params:
        cfg=C1,
    conda:
        "../../envs/potune.yaml"
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
    params:
        title=f"{C['run_name']}: stage 1 (kernel objective)",
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/convergence.py"
