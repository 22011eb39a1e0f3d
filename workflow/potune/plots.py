"""Figures, each written with the CSV it was drawn from."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .search import ok_mask


def convergence_data(table: pd.DataFrame) -> pd.DataFrame:
    """Per evaluation: iteration, trial, loss (NaN if failed), best loss so far."""
    t = table.sort_values(["iteration", "trial"], kind="stable").reset_index(drop=True)
    loss = pd.to_numeric(t["loss"], errors="coerce").where(ok_mask(t))
    return pd.DataFrame({
        "evaluation": np.arange(1, len(t) + 1),
        "iteration": t["iteration"].to_numpy(),
        "trial_id": t["trial_id"].to_numpy(),
        "status": t["status"].to_numpy(),
        "loss": loss.to_numpy(),
        "best_so_far": loss.cummin().to_numpy(),
    })


def convergence_plot(table: pd.DataFrame, png: str | os.PathLike, csv: str | os.PathLike, title: str = "") -> pd.DataFrame:
    """Loss of each trial and best so far vs evaluation, coloured by iteration; failed trials
    marked at the top of the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = convergence_data(table)
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    d.to_csv(csv, index=False)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ok = d["loss"].notna()
    sc = ax.scatter(d.loc[ok, "evaluation"], d.loc[ok, "loss"], c=d.loc[ok, "iteration"], cmap="viridis",
                    s=28, zorder=3, label="trial")
    ax.step(d["evaluation"], d["best_so_far"], where="post", color="crimson", lw=1.8, label="best so far")
    if (~ok).any():
        top = d.loc[ok, "loss"].max() if ok.any() else 1.0
        ax.scatter(d.loc[~ok, "evaluation"], [top] * int((~ok).sum()), marker="x", color="k", label="failed", zorder=4)
    for it in sorted(d["iteration"].unique())[1:]:
        ax.axvline(d.loc[d["iteration"] == it, "evaluation"].min() - 0.5, color="0.8", lw=0.8, zorder=1)
    if ok.any() and (d.loc[ok, "loss"] > 0).all() and d.loc[ok, "loss"].max() / d.loc[ok, "loss"].min() > 20:
        ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("validation loss")
    ax.set_title(title or "convergence")
    if ok.any():
        fig.colorbar(sc, ax=ax, label="iteration")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return d
