# The search loop. `propose` is a checkpoint: each iteration's proposals are only known once
# it has run, and the DAG is re-expanded with one `fit` job per proposed trial and fold.
# `collect` appends an iteration's results to the trial table read by the next `propose`.


checkpoint propose:
    input:
        table=previous_table,
        stage1=stage1_best_input,
    output:
        proposals=directory(f"{R}/iter{{iteration}}/proposals"),
    log:
        f"{R}/logs/propose/iter{{iteration}}.log",
    params:
        cfg=C,
        first=first_decision,
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/propose.py"


rule collect:
    input:
        previous=previous_table,
        proposals=lambda wc: proposals_dir(wc.iteration),
        results=iteration_results,
    output:
        table=f"{R}/iter{{iteration}}/table.csv",
    log:
        f"{R}/logs/collect/iter{{iteration}}.log",
    params:
        cfg=C,
        n_folds=NF,
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/collect.py"


rule trials_table:
    input:
        final_table,
    output:
        table=f"{R}/trials.csv",
    log:
        f"{R}/logs/trials_table.log",
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/trials_table.py"
