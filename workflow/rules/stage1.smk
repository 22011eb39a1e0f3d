# Stage 1 of the PPSO two-stage strategy (strategy: two_stage): SOAP hyperparameters and zeta
# searched by the shape of the kernel distribution of the training environments; no GAP is
# fitted. Its own loop: checkpoint `propose_descriptors` -> `kernel_stats` per trial ->
# `collect_descriptors`, under R/stage1/. Stage 2 is the ordinary loop (propose.smk), whose
# `propose` reads R/stage1/best.yaml and holds that descriptor fixed.
from potune.twostage import is_two_stage, stage1_config

TWO_STAGE = is_two_stage(C)
C1 = stage1_config(C) if TWO_STAGE else None
S1 = f"{R}/stage1"


localrules:
    propose_descriptors,
    collect_descriptors,
    stage1_table,
    best_descriptor,
    stage1_convergence,


def stage1_best_input(wildcards):
    """Stage 2's `propose` waits for stage 1's best descriptor (two_stage only)."""
    return [f"{S1}/best.yaml"] if TWO_STAGE else []


def s1_proposals_dir(iteration):
    return checkpoints.propose_descriptors.get(iteration=int(iteration)).output.proposals


def s1_decision(iteration):
    return read_yaml(Path(s1_proposals_dir(iteration)) / "decision.yaml")


def s1_previous_table(wildcards):
    it = int(wildcards.iteration)
    return [] if it == 0 else [f"{S1}/iter{it - 1}/table.csv"]


def s1_first_decision(wildcards):
    return None if int(wildcards.iteration) == 0 else f"{S1}/iter0/proposals/decision.yaml"


def s1_iteration_results(wildcards):
    from potune.steps import proposal_trials

    it = wildcards.iteration
    return [f"{S1}/iter{it}/{t}/kernel.json" for t in proposal_trials(s1_proposals_dir(it))]


def s1_final_table(wildcards):
    it = 0
    while not s1_decision(it)["stop"]:
        it += 1
    if it == 0:
        raise WorkflowError(f"potune: stage 1 stopped before its first iteration: {s1_decision(0)['reason']}")
    return f"{S1}/iter{it - 1}/table.csv"


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
