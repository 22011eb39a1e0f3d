"""Does a stage-1 kernel criterion pick good descriptors? The kernel statistics of a
descriptor on a training set (:func:`descriptor_kernel_stats`, shared with the stage-1 rule
steps) and the check of every criterion against the descriptors of a finished joint search,
each with a fitted GAP (:func:`objective_check`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import data as D
from ..errors import ConfigError
from ..io import read_yaml
from ..trials import read_table
from .kernel import OBJECTIVES, _power, kernel_objective, kernel_stats, sample_rows
from .soap import STAGE1_HYPERPARAMETERS, soap_vectors


def read_environments(train_file: str | os.PathLike, kernel_cfg: dict) -> list:
    """Training structures for the kernel statistics (a seeded subset if
    ``kernel.max_structures`` is set)."""
    frames = D.read_normalised(train_file)
    idx = D.seeded_subset(len(frames), kernel_cfg.get("max_structures"), int(kernel_cfg.get("seed", 0)))
    return [frames[i] for i in idx]


def descriptor_kernel_stats(frames: Sequence, params: dict, settings: dict, kernel_cfg: dict):
    """SOAP vectors of ``frames`` for ``params`` and the statistics of their kernel."""
    hp = {k: v for k, v in params.items() if k in STAGE1_HYPERPARAMETERS}
    sv = soap_vectors(frames, hp, settings)
    zeta = float(params.get("zeta", 4))
    st = kernel_stats(
        sv.vectors,
        zeta,
        n_sample=int(kernel_cfg.get("n_sample", 3000)),
        seed=int(kernel_cfg.get("seed", 0)),
        bins=int(kernel_cfg.get("bins", 100)),
        groups=sv.central_z,
        max_block_mb=float(kernel_cfg.get("max_block_mb", 256)),
    )
    return sv, st


def kernel_target_alignment(sv, frames: Sequence, zeta: float, n_sample: int = 3000, seed: int = 0) -> float:
    """Kernel-target alignment <K, y y^T> / (|K| |y y^T|) of the per-atom energies.

    ``y`` is each environment's structure energy per atom (``REF_energy / N``), centred; K the
    kernel ``(q_i . q_j)^zeta`` between ``n_sample`` random environments (as
    :func:`potune.kernel.kernel_stats`) and all of them. Close to 1 when environments the kernel
    calls similar have similar energies. Needs the energies, so it is *not* a PPSO stage-1
    criterion; :func:`objective_check` reports it as a reference.
    """
    e = np.array([a.info[D.REF_E] / len(a) for a in frames], dtype=float)
    y = e[sv.structure] - e[sv.structure].mean()
    rows = sample_rows(len(y), n_sample, seed)
    g = sv.vectors[rows] @ sv.vectors.T
    K = _power(g, float(zeta), np.empty_like(g))
    K[sv.central_z[rows][:, None] != sv.central_z[None, :]] = 0.0  # GAP compares like species only
    Y = np.outer(y[rows], y)
    denom = np.linalg.norm(K) * np.linalg.norm(Y)
    return float((K * Y).sum() / denom) if denom > 0 else math.nan


def objective_check(run_dir: str | os.PathLike, kernel_cfg: dict | None = None) -> pd.DataFrame:
    """Does the stage-1 criterion pick good descriptors? Checked on a finished *joint* search.

    A joint search fitted a GAP for every descriptor it tried, so each of its successful
    trials gives a (descriptor, validation loss) pair. For each, this computes the kernel
    statistics of the trial's descriptor on the run's training set and the stage-1 loss of
    every ``kernel.objective`` kind (lower is better, as stage 1 minimises them), plus the
    target-aware kernel-target alignment (negated, so lower is better too).

    Parameters
    ----------
    run_dir
        A finished joint GAP search (``run/config.yaml``, ``split/full_train.xyz``, ``trials.csv``).
    kernel_cfg
        Overrides of the run's ``kernel`` section (``n_sample``, ``seed``).

    Returns
    -------
    pandas.DataFrame
        One row per successful trial: ``trial_id``, ``loss`` (validation), ``energy_rmse_mev``,
        ``force_rmse``, kernel ``mean``/``std``/``skew``, ``crit_<kind>`` for each objective kind
        and ``crit_alignment``.
    """
    run_dir = Path(run_dir)
    cfg = read_yaml(run_dir / "run" / "config.yaml")
    if cfg.get("fitter") != "gap":
        raise ConfigError(f"{run_dir}: objective_check needs a GAP search (fitter is {cfg.get('fitter')!r})")
    kcfg = {**(cfg.get("kernel") or {}), **(kernel_cfg or {})}
    frames = read_environments(run_dir / "split" / "full_train.xyz", kcfg)
    table = read_table(run_dir / "trials.csv")
    ok = table[(table["status"] == "ok") & pd.to_numeric(table["loss"], errors="coerce").notna()]
    if len(ok) == 0:
        raise ValueError(f"{run_dir / 'trials.csv'}: no successful trial to check")
    rows = []
    for _, t in ok.iterrows():
        prop = read_yaml(t["params_file"])
        params = {**(prop.get("fixed") or {}), **prop["point"]}
        sv, st = descriptor_kernel_stats(frames, params, cfg["gap"], kcfg)
        row = {
            "trial_id": t["trial_id"],
            "loss": float(t["loss"]),
            "energy_rmse_mev": float(t["energy_rmse_mev"]),
            "force_rmse": float(t["force_rmse"]),
            "mean": st.mean,
            "std": st.std,
            "skew": st.skew,
        }
        for kind in OBJECTIVES:
            row[f"crit_{kind}"] = kernel_objective(st, {**(kcfg.get("objective") or {}), "kind": kind})["loss"]
        row["crit_alignment"] = -kernel_target_alignment(
            sv, frames, float(params.get("zeta", 4)), int(kcfg.get("n_sample", 3000)), int(kcfg.get("seed", 0))
        )
        rows.append(row)
    return pd.DataFrame(rows)


def objective_check_summary(df: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Per criterion: Spearman rank correlation with the validation loss (positive: the
    criterion ranks descriptors as the GAP fits do) and the validation loss of the trials the
    criterion ranks first (the one stage 1 would pick, and the median of its ``top``), beside
    the best and median loss of all trials, and where the criterion ranks the trial of the best
    loss (``rank_of_best``, 1 = first). The losses also depend on each trial's GAP
    hyperparameters, so read them with the correlation."""
    from scipy.stats import spearmanr

    out = []
    best = df["loss"].idxmin()
    for c in [c for c in df.columns if c.startswith("crit_")]:
        order = df.sort_values(c)
        out.append(
            {
                "criterion": c[len("crit_") :],
                "spearman_rho": float(spearmanr(df[c], df["loss"]).statistic),
                "rank_of_best": int((df[c] < df.loc[best, c]).sum()) + 1,
                "loss_of_pick": float(order["loss"].iloc[0]),
                f"median_loss_top{top}": float(order["loss"].iloc[:top].median()),
                "best_loss": float(df["loss"].min()),
                "median_loss": float(df["loss"].median()),
                "trials": len(df),
            }
        )
    return pd.DataFrame(out)
