# Figures of the PPSO paper for any run (kernel distribution of the best SOAP; dimer
# similarity curves), the refit with forces after an energy-only search (PPSO Table 5), and
# the extra targets of strategy two_stage.


localrules:
    refit_comparison,


rule kernel_figure:
    input:
        best=f"{R}/best/best.yaml",
        train=f"{R}/split/full_train.xyz",
    output:
        png=f"{R}/figures/kernel_hist.png",
        csv=f"{R}/figures/kernel_hist.csv",
        stats=f"{R}/figures/kernel_stats.json",
    log:
        f"{R}/logs/kernel_figure.log",
    # killed on every attempt but the last, or quippy failing: recorded in kernel_stats.json
    # (status failed), stated in summary.md; the run goes on
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
        "../../scripts/kernel_figure.py"


rule similarity_curve:
    input:
        best=f"{R}/best/best.yaml",
        train=f"{R}/split/full_train.xyz",
    output:
        png=f"{R}/figures/similarity.png",
        csv=f"{R}/figures/similarity.csv",
        status=f"{R}/figures/similarity.json",
    log:
        f"{R}/logs/similarity_curve.log",
    # as kernel_figure: a failure is recorded in similarity.json and stated in summary.md
    retries: RES["kernel"]["retries"] + 1
    conda:
        "../../envs/gap.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: job_mem_mb("kernel", None, None, attempt),
        runtime=lambda wc, attempt: runtime_min(RES["kernel"], attempt),
        attempt=lambda wc, attempt: attempt,
        max_attempts=RES["kernel"]["retries"] + 2,
    params:
        settings=C.get("gap", {}),
        n_reference=C["kernel"]["n_reference"],
    script:
        "../../scripts/similarity.py"


use rule refit as refit_forces with:
    output:
        result=f"{R}/best/forces/fit.json",
        model=directory(f"{R}/best/forces/potential"),
    log:
        f"{R}/best/forces/fit.log",
    params:
        fitter=FITTER,
        settings={**C.get(FITTER, {}), "energy_only": False},


use rule test_errors as test_errors_forces with:
    input:
        model=rules.refit_forces.output.model,
        test=f"{R}/split/test.xyz",
    output:
        errors=f"{R}/best/forces/test_errors.csv",
        predictions=f"{R}/best/forces/test_predictions.npz",
        metrics=f"{R}/best/forces/test_metrics.json",
    log:
        f"{R}/logs/test_errors_forces.log",


rule refit_comparison:
    input:
        search_metrics=f"{R}/best/test_metrics.json",
        forces_metrics=rules.test_errors_forces.output.metrics,
        search_fit=f"{R}/best/fit.json",
        forces_fit=rules.refit_forces.output.result,
    output:
        csv=f"{R}/best/refit_comparison.csv",
    log:
        f"{R}/logs/refit_comparison.log",
    conda:
        "../../envs/potune.yaml"
    params:
        energy_only=C.get("gap", {}).get("energy_only", False),
    script:
        "../../scripts/refit_comparison.py"
