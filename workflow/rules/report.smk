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


def summary_inputs(wildcards):
    d = {"table": f"{R}/trials.csv", "best": f"{R}/best/best.yaml"}
    if best_found():
        d["refit"] = f"{R}/best/fit.json"
        if C["data"].get("test"):
            d["test"] = f"{R}/best/test_metrics.json"
    return d


rule summary:
    input:
        unpack(summary_inputs),
    output:
        md=f"{R}/summary.md",
    log:
        f"{R}/logs/summary.log",
    params:
        cfg=C,
        run_dir=R,
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/summary.py"
