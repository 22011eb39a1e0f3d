# Data: read and check the reference data, split it into training and validation folds.


rule split:
    input:
        unpack(data_inputs),
    output:
        **split_outputs(),
    log:
        f"{R}/logs/split.log",
    conda:
        "../../envs/potune.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=DATA,
    script:
        "../../scripts/split.py"


rule record_run:
    output:
        config=report(f"{R}/run/config.yaml", caption="../report/config.rst", category="Configuration"),
        versions=f"{R}/run/versions.yaml",
    log:
        f"{R}/logs/record_run.log",
    conda:
        "../../envs/potune.yaml"
    params:
        cfg=C,
    script:
        "../../scripts/record_run.py"
