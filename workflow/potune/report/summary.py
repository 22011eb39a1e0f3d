"""``summary.md`` of a run: best trial, stop reason, budget, failures, test errors, the
stage-1 section of a two-stage run and the Pareto front.
"""

from __future__ import annotations

import pandas as pd

from ..io import read_yaml
from ..trials import read_table


def failure_summary(table: pd.DataFrame, n: int = 5) -> list[dict]:
    """The most common failure reasons of a trial table: reason, count, trial ids, and the fit
    log of the first trial that failed for it."""
    failed = table[table["status"] != "ok"]
    out = []
    if len(failed) == 0:
        return out
    reasons = failed["reason"].fillna("").astype(str).replace("", "(no reason recorded)")
    for reason, count in reasons.value_counts().head(n).items():
        rows = failed[reasons == reason]
        first = rows.iloc[0]
        logs = str(first.get("fit_logs", "") or "").split(";")
        out.append(
            {
                "reason": reason,
                "count": int(count),
                "trials": [str(t) for t in rows["trial_id"]],
                "example_log": logs[0] if logs and logs[0] else "",
            }
        )
    return out


def stage1_summary_lines(table_file, best_file, stop_file) -> list[str]:
    """The stage-1 section of summary.md: budget, stop reason and the descriptor stage 2 held."""
    table = read_table(table_file)
    best = read_yaml(best_file)
    n_failed = int((table["status"] != "ok").sum())
    head = f"- descriptor trials: {len(table)} in {table['iteration'].nunique()} iteration(s), {n_failed} failed; "
    if best.get("stage1_objective") == "proxy":
        lines = [
            "## Stage 1: descriptor search by low-fidelity (proxy) GAP fits",
            "",
            head + f"total proxy fit CPU time {table['fit_cpu_s'].sum():.0f} s, wall {table['fit_wall_s'].sum():.0f} s",
            f"- stop reason: {read_yaml(stop_file)['reason']}",
            f"- best descriptor: {best['trial_id']} (proxy validation loss {best['loss']:.5g}; E RMSE "
            f"{best['energy_rmse_mev']:.3g} meV/atom, F RMSE {best['force_rmse']:.4g} eV/Å at proxy fidelity); "
            "stage 2 held these values fixed:",
            "",
        ]
    else:
        lines = [
            "## Stage 1: descriptor search by kernel statistics (no GAP fitted)",
            "",
            head + f"total kernel time {table['kernel_time_s'].sum():.0f} s",
            f"- stop reason: {read_yaml(stop_file)['reason']}",
            f"- best descriptor: {best['trial_id']} (objective {best['loss']:.5g}; kernel mean "
            f"{best['kernel_mean']:.4f}, std {best['kernel_std']:.4f}, skew {best['kernel_skew']:.3f}); "
            "stage 2 held these values fixed:",
            "",
        ]
    lines += [
        "| descriptor hyperparameter | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in best["hyperparameters"].items()]
    return lines + [""]


def refit_comparison_lines(csv) -> list[str]:
    """The summary.md section comparing the refit as searched with the refit on energies and forces."""
    df = pd.read_csv(csv)
    lines = [
        "",
        "## Refit as searched vs with forces (test set)",
        "",
        "| fit | E RMSE (meV/atom) | F RMSE (eV/Å) | fit time (s) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.fit} | {r.energy_rmse_mev:.3f} | {r.force_rmse:.4f} | {r.fit_wall_s:.0f} |" for r in df.itertuples()
    ]
    return lines


def core_use(work_s: float, run_dir, cores: int | None) -> list[str]:
    """The summary line on how busy the fits kept the cores: fit and descriptor time (one
    core each) over the search's wall time (iteration 0's proposal to the final table)
    times ``cores``. Nothing when the number of cores or the times are not known."""
    from pathlib import Path

    run_dir = Path(run_dir)
    meta, final = run_dir / "iter0" / "proposals" / "meta.yaml", run_dir / "trials.csv"
    if not cores or not meta.exists() or not final.exists():
        return []
    wall = final.stat().st_mtime - float(read_yaml(meta)["started_at"])
    if wall <= 0:
        return []
    return [
        f"- core use: fits kept the {int(cores)} core(s) {100 * work_s / (wall * int(cores)):.0f} % busy "
        f"({work_s:.0f} s of fits in {wall:.0f} s of search wall time)"
    ]


#: a best trial is flagged poor when its validation energy or force RMSE is more than this
#: fraction of what a trivial model scores on the same structures: the mean energy per atom
#: of the validation structures for every structure (RMSE = their standard deviation), zero
#: force on every atom (RMSE = the RMS of the reference force components)
POOR_FRACTION = 0.5


def trivial_errors(predictions_file) -> dict:
    """The validation RMSEs of a trivial model, from a ``valid_predictions.npz``:
    ``energy_rmse_mev`` (the mean energy per atom everywhere) and ``force_rmse`` (zero forces);
    NaN where the file has no energies/forces."""
    import numpy as np

    with np.load(predictions_file, allow_pickle=False) as d:
        e = np.asarray(d["energy_ref_per_atom"], dtype=float) if "energy_ref_per_atom" in d else np.zeros(0)
        f = np.asarray(d["force_ref"], dtype=float) if "force_ref" in d else np.zeros(0)
    return {
        "energy_rmse_mev": 1000.0 * float(e.std()) if e.size > 1 else float("nan"),
        "force_rmse": float(np.sqrt(np.mean(f**2))) if f.size else float("nan"),
    }


def poor_best_warning(best: dict, trivial: dict, fraction: float = POOR_FRACTION) -> str | None:
    """A plain warning when the best trial's validation energy or force RMSE (``best``: the
    ``best.yaml`` fields) exceeds ``fraction`` of a trivial model's (:func:`trivial_errors`);
    None when it does not."""
    import math

    parts = []
    for key, what, unit, fmt, trivial_what in (
        ("energy_rmse_mev", "energy", "meV/atom", ".3g", "the mean energy per atom for every structure"),
        ("force_rmse", "force", "eV/Å", ".3g", "zero forces"),
    ):
        err, base = float(best.get(key, math.nan)), float(trivial.get(key, math.nan))
        if math.isfinite(err) and math.isfinite(base) and base > 0 and err > fraction * base:
            parts.append(
                f"its validation {what} RMSE {err:{fmt}} {unit} is {err / base:.0%} of what predicting "
                f"{trivial_what} gives ({base:{fmt}} {unit})"
            )
    if not parts:
        return None
    return (
        f"Warning: the best trial {best.get('trial_id')} is a poor potential: {'; '.join(parts)} "
        f"(flagged above {fraction:.0%}). Widen the search space, raise the budget or check the data."
    )
