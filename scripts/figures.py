"""Figure rules (`parity`, `landscape`, `cost`, `dimer`, `errors_by_config_type`): unpack and call."""

from potune.console import logged
from potune.report import plots
from potune.steps.report import config_type_errors_step, dimer_step, landscape_step, parity_step
from potune.trials import read_table

sm = snakemake  # noqa: F821 (provided by Snakemake)
with logged(sm.log[0], "w"):
    if sm.rule == "parity":
        parity_step(sm.input.valid, sm.input.get("test"), sm.output.png, sm.output.energy, sm.output.force)
    elif sm.rule == "landscape":
        landscape_step(sm.params.cfg, sm.input.table, sm.output.png, sm.output.csv, sm.output.objective)
    elif sm.rule == "cost":
        plots.cost_plot(read_table(sm.input.table), sm.output.png, sm.output.csv)
    elif sm.rule == "dimer":
        dimer_step(sm.params.cfg, sm.input.model, list(sm.input.data), sm.output.png, sm.output.csv)
    elif sm.rule == "errors_by_config_type":
        config_type_errors_step(sm.input.errors, sm.output.png)
    else:
        raise ValueError(f"scripts/figures.py does not know rule {sm.rule}")
