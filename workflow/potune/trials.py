"""The trial table: one row per trial, the one source of truth of a search.

Columns: ``iteration``, ``trial``, ``trial_id``, every hyperparameter (searched and fixed),
``status`` (ok / failed), ``reason``, ``loss``, validation errors (``energy_rmse_mev`` in
meV/atom, ``force_rmse`` in eV/Å, MAEs), ``fit_time_s`` (wall) and ``fit_cpu_s`` (the fitter processes' CPU), summed over folds,
``peak_mem_mb``, ``predict_ms_per_atom``, ``n_folds``, per-config_type errors
(``energy_rmse_mev[<config_type>]``, ``force_rmse[<config_type>]``), and the files each
row comes from (``params_file``, ``fit_logs``). A nested SNAP trial
(:mod:`potune.fitters.snap.nested`) shows the weights its inner search chose (the ones the
model was fitted with) in the weight columns, its best inner validation loss in
``inner_loss`` (``loss`` is the validate job's, on the same model: they agree; with
``snap.inner.folds`` k > 1 ``inner_loss`` is the k-fold cross-validation loss on the training
structures, so they differ, and ``inner_folds`` says k), and
``inner_evaluations``, ``inner_time_s``, ``inner_table`` (with ``snap.inner.warm_start``
also ``inner_warm_start``, the warm-start points evaluated, and ``inner_best_warm``, whether
one of them was the inner best; with ``optimizer.default_first`` ``inner_best_default``,
whether the fitter's default weights were). With ``snap.outer_loss: cv`` the trial's ``loss``
is its inner CV loss (what the outer search is told and the best trial is chosen by), with
its errors in ``inner_energy_rmse_mev`` and ``inner_force_rmse``; the validation fold's loss
moves to ``valid_loss``, and the other error columns stay the validation fold's.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluate.metrics import combine_folds
from .io import atomic_write_text, read_json, read_yaml

METRICS = ["energy_rmse_mev", "force_rmse", "energy_mae_mev", "force_mae", "predict_ms_per_atom"]


def trial_row(params_file: str | os.PathLike, fold_dirs: Sequence[str | os.PathLike]) -> dict:
    """One table row from a trial's proposal file and its per-fold ``fit.json``/``valid.json``."""
    prop = read_yaml(params_file)
    row: dict = {
        "iteration": int(prop["iteration"]),
        "trial": prop["trial"],
        "trial_id": prop["trial_id"],
        "origin": prop.get("origin", "optimizer"),
    }
    row.update(prop["point"])
    for k, v in (prop.get("fixed") or {}).items():
        row.setdefault(k, v)
    status, reason = "ok", ""
    ranked = None  # snap.outer_loss cv: the inner CV errors of the chosen weights
    fit_time, fit_cpu, peak = 0.0, 0.0, 0.0
    folds = []
    logs = []
    for i, d in enumerate(fold_dirs):
        d = Path(d)
        fit = read_json(d / "fit.json")
        val = read_json(d / "valid.json")
        logs.append(str(d / "fit.log"))
        fit_time += float(fit.get("wall_s") or 0.0)
        fit_cpu += float(fit.get("cpu_s") or 0.0)
        peak = max(peak, float(fit.get("peak_rss_mb") or 0.0))
        if status == "ok":
            if fit["status"] != "ok":
                status, reason = "failed", fit["reason"]
            elif val["status"] != "ok":
                status, reason = "failed", val["reason"]
            if status != "ok" and len(fold_dirs) > 1:
                reason = f"fold {i}: {reason}"
        folds.append(val)
        inner = fit.get("inner")
        if inner and len(fold_dirs) == 1:  # the weights actually used, not the outer proposal
            row.update(inner["params"])
            row["inner_loss"] = inner["loss"]
            row["inner_evaluations"] = inner["evaluations"]
            row["inner_time_s"] = inner["wall_s"]
            row["inner_table"] = inner["table"]
            if inner.get("folds"):  # snap.inner.folds > 1: inner_loss is the k-fold CV loss on train
                row["inner_folds"] = inner["folds"]
                ranked = cv_ranked(fit)
            if inner.get("warm_start"):  # snap.inner.warm_start: how many start points, and whether one won
                row["inner_warm_start"] = inner["warm_start"]
                row["inner_best_warm"] = inner["best_origin"] == "warm"
            if inner.get("default_start"):  # optimizer.default_first: did the default weights win
                row["inner_best_default"] = inner["best_origin"] == "default"
    row["status"] = status
    row["reason"] = reason
    if status == "ok":
        means = combine_folds([{k: f[k] for k in ["loss", *METRICS]} for f in folds])
        row.update(means)
        cts = sorted({ct for f in folds for ct in f.get("per_config_type", {})})
        for ct in cts:
            for m in ("energy_rmse_mev", "force_rmse"):
                vals = [f["per_config_type"][ct][m] for f in folds if ct in f.get("per_config_type", {})]
                row[f"{m}[{ct}]"] = float(np.mean(vals))
        if ranked is not None:  # the validation fold's loss is kept beside it, as a check
            row["valid_loss"] = row["loss"]
            row["loss"] = ranked["loss"]
            row["inner_energy_rmse_mev"] = ranked["energy_rmse_mev"]
            row["inner_force_rmse"] = ranked["force_rmse"]
    else:
        row["loss"] = math.nan
        for m in METRICS:
            row[m] = math.nan
    row["fit_time_s"] = fit_time
    row["fit_cpu_s"] = fit_cpu
    row["peak_mem_mb"] = peak
    row["n_folds"] = len(fold_dirs)
    row["descriptor_length"] = fit.get("descriptor_length") if fold_dirs else None
    row["params_file"] = str(params_file)
    row["fit_logs"] = ";".join(logs)
    return row


def cv_ranked(fit: dict) -> dict | None:
    """The errors a nested SNAP trial is ranked by under ``snap.outer_loss: cv``, from its
    ``fit.json``: the inner k-fold CV ``loss``, ``energy_rmse_mev`` and ``force_rmse`` of the
    chosen weights (the fit job marks them with ``inner.outer_loss``); ``None`` for any other
    trial, which is ranked by its validation loss."""
    inner = fit.get("inner") or {}
    if inner.get("outer_loss") != "cv":
        return None
    return {k: float(inner[k]) for k in ("loss", "energy_rmse_mev", "force_rmse")}


def order_columns(df: pd.DataFrame, param_names: Sequence[str]) -> pd.DataFrame:
    head = [
        "iteration",
        "trial",
        "trial_id",
        *param_names,
        "status",
        "reason",
        "loss",
        *METRICS,
        "fit_time_s",
        "fit_cpu_s",
        "peak_mem_mb",
        "descriptor_length",
        "n_folds",
    ]
    tail = ["params_file", "fit_logs"]
    head = [c for c in head if c in df.columns]
    middle = [c for c in df.columns if c not in head and c not in tail]
    return df[head + sorted(middle) + [c for c in tail if c in df.columns]]


def append_rows(previous: pd.DataFrame | None, rows: Sequence[dict], param_names: Sequence[str]) -> pd.DataFrame:
    new = pd.DataFrame(list(rows))
    df = new if previous is None or len(previous) == 0 else pd.concat([previous, new], ignore_index=True)
    df = df.sort_values(["iteration", "trial"], kind="stable").reset_index(drop=True)
    return order_columns(df, param_names)


def write_table(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write the table atomically (never a half-written trials.csv)."""
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"reason": str, "trial": str, "trial_id": str, "status": str})
    if "reason" in df.columns:
        df["reason"] = df["reason"].fillna("")
    return df
