# What users read: convergence plot and the run summary.


rule convergence:
    input:
        table=rules.trials_table.output.table,
    output:
        png=f"{R}/convergence.png",
        csv=f"{R}/convergence.csv",
    log:
        f"{R}/logs/convergence.log",
    params:
        title=C["run_name"],
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/convergence.py"


rule summary:
    input:
        unpack(summary_inputs),
    output:
        md=f"{R}/summary.md",
    log:
        f"{R}/logs/summary.log",
    params:
        cfg=C,
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/summary.py"
