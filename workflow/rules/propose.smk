# The search loop. `propose` is a checkpoint: each iteration's proposals are only known once
# it has run, and the DAG is re-expanded with one `fit` job per proposed trial and fold.
# `collect` (also a checkpoint) appends an iteration's results to the trial table; the input
# functions in common.smk read it to decide whether the next `propose` runs (stop rules).


checkpoint propose:
    input:
        table=propose_table,
        pending=pending_proposals,
        stage1=stage1_best_input,
    output:
        proposals=directory(f"{R}/iter{{iteration}}/proposals"),
    log:
        f"{R}/logs/propose/iter{{iteration}}.log",
    conda:
        "../../envs/potune.yaml"
    params:
        space=C["space"],
        fixed=C.get("fixed") or {},
        optimizer=C["optimizer"],
        fitter=FITTER,
    script:
        "../../scripts/propose.py"


checkpoint collect:
    input:
        previous=previous_table,
        proposals=lambda wc: proposals_dir(wc.iteration),
        results=iteration_results,
    output:
        table=f"{R}/iter{{iteration}}/table.csv",
    log:
        f"{R}/logs/collect/iter{{iteration}}.log",
    conda:
        "../../envs/potune.yaml"
    params:
        names=list(C["space"]) + [k for k in (C.get("fixed") or {}) if k not in C["space"]],
        n_folds=NF,
    script:
        "../../scripts/collect.py"


rule trials_table:
    input:
        final_table,
        ahead=lookahead_inputs,
    output:
        table=report(f"{R}/trials.csv", caption="../report/trials.rst", category="Search"),
        stop=f"{R}/stop.yaml",
    log:
        f"{R}/logs/trials_table.log",
    conda:
        "../../envs/potune.yaml"
    params:
        stop=stop_info,
    script:
        "../../scripts/trials_table.py"
