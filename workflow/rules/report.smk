# What users read: convergence, parity, landscape, cost and dimer figures (each with its CSV),
# and the run summary. Outputs wrapped in report() appear in `snakemake --report`.


rule convergence:
    input:
        table=rules.trials_table.output.table,
    output:
        png=report(f"{R}/convergence.png", caption="../report/convergence.rst", category="Search"),
        csv=f"{R}/convergence.csv",
    log:
        f"{R}/logs/convergence.log",
    conda:
        "../../envs/potune.yaml"
    params:
        title=C["run_name"],
    script:
        "../../scripts/convergence.py"


rule parity:
    input:
        unpack(parity_inputs),
    output:
        png=report(f"{R}/figures/parity.png", caption="../report/parity.rst", category="Best potential"),
        energy=f"{R}/figures/parity_energy.csv",
        force=f"{R}/figures/parity_force.csv",
    log:
        f"{R}/logs/parity.log",
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/figures.py"


rule errors_by_config_type:
    input:
        errors=f"{R}/best/test_errors.csv",
    output:
        png=report(f"{R}/figures/errors_by_config_type.png", caption="../report/errors.rst", category="Best potential"),
    log:
        f"{R}/logs/errors_by_config_type.log",
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/figures.py"


rule landscape:
    input:
        table=rules.trials_table.output.table,
    output:
        png=report(f"{R}/figures/landscape.png", caption="../report/landscape.rst", category="Search"),
        csv=f"{R}/figures/landscape.csv",
        objective=report(f"{R}/figures/objective.png", caption="../report/objective.rst", category="Search"),
    log:
        f"{R}/logs/landscape.log",
    conda:
        "../../envs/potune.yaml"
    params:
        cfg=SEARCH,
    script:
        "../../scripts/figures.py"


rule cost:
    input:
        table=rules.trials_table.output.table,
    output:
        png=report(f"{R}/figures/cost.png", caption="../report/cost.rst", category="Search"),
        csv=f"{R}/figures/cost.csv",
    log:
        f"{R}/logs/cost.log",
    conda:
        "../../envs/potune.yaml"
    script:
        "../../scripts/figures.py"


rule dimer:
    input:
        model=rules.refit.output.model,
        data=dimer_data_inputs,
    output:
        png=report(f"{R}/figures/dimer.png", caption="../report/dimer.rst", category="Best potential"),
        csv=f"{R}/figures/dimer.csv",
    log:
        f"{R}/logs/dimer.log",
    conda:
        f"../../envs/{FITTER}.yaml"
    params:
        cfg=SEARCH,
    script:
        "../../scripts/figures.py"


rule summary:
    input:
        unpack(summary_inputs),
    output:
        md=report(f"{R}/summary.md", caption="../report/workflow.rst", category="Summary"),
    log:
        f"{R}/logs/summary.log",
    conda:
        "../../envs/potune.yaml"
    # a resource, not a param: running again with other --cores must not redo the summary
    resources:
        driver_cores=workflow.cores or 0,
    params:
        cfg=C,
    script:
        "../../scripts/summary.py"
