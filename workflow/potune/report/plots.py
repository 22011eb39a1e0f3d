"""Figures, each written with the CSV it was drawn from."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..search.loop import ok_mask


def convergence_data(table: pd.DataFrame) -> pd.DataFrame:
    """Per evaluation: iteration, trial, loss (NaN if failed), best loss so far."""
    t = table.sort_values(["iteration", "trial"], kind="stable").reset_index(drop=True)
    loss = pd.to_numeric(t["loss"], errors="coerce").where(ok_mask(t))
    return pd.DataFrame(
        {
            "evaluation": np.arange(1, len(t) + 1),
            "iteration": t["iteration"].to_numpy(),
            "trial_id": t["trial_id"].to_numpy(),
            "status": t["status"].to_numpy(),
            "loss": loss.to_numpy(),
            "best_so_far": loss.cummin().to_numpy(),
        }
    )


def convergence_plot(
    table: pd.DataFrame, png: str | os.PathLike, csv: str | os.PathLike, title: str = ""
) -> pd.DataFrame:
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
    sc = ax.scatter(
        d.loc[ok, "evaluation"],
        d.loc[ok, "loss"],
        c=d.loc[ok, "iteration"],
        cmap="viridis",
        s=28,
        zorder=3,
        label="trial",
    )
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
        from matplotlib.ticker import MaxNLocator

        fig.colorbar(sc, ax=ax, label="iteration", ticks=MaxNLocator(integer=True))  # iterations are whole numbers
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return d


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour_map(labels) -> dict:
    import matplotlib

    uniq = sorted(set(str(x) for x in labels))
    if len(uniq) <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return {u: cmap(i) for i, u in enumerate(uniq)}
    if len(uniq) <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return {u: cmap(i) for i, u in enumerate(uniq)}
    cmap = matplotlib.colormaps["turbo"]  # distinct colours however many config_types
    return {u: cmap(i / (len(uniq) - 1)) for i, u in enumerate(uniq)}


def parity_data(preds: dict, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Energy (per atom) and force-component parity tables from saved predictions."""
    e = pd.DataFrame(
        {
            "dataset": dataset,
            "config_type": preds["config_type"],
            "energy_ref_ev_per_atom": preds["energy_ref_per_atom"],
            "energy_pred_ev_per_atom": preds["energy_pred_per_atom"],
        }
    )
    f = pd.DataFrame(
        {
            "dataset": dataset,
            "config_type": preds["force_config_type"],
            "force_ref": preds["force_ref"],
            "force_pred": preds["force_pred"],
        }
    )
    return e, f


def parity_plot(sets: dict[str, dict], png, csv_energy, csv_force) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Energy and force parity of one potential on several data sets (e.g. validation and test),
    coloured by config_type. ``sets``: name -> predictions dict (see ``evaluate.evaluate``)."""
    plt = _plt()
    es, fs = zip(*(parity_data(p, name) for name, p in sets.items()))
    e, f = pd.concat(es, ignore_index=True), pd.concat(fs, ignore_index=True)
    e.to_csv(csv_energy, index=False)
    f.to_csv(csv_force, index=False)
    colours = _colour_map(list(e["config_type"]) + list(f["config_type"]))
    fig, axes = plt.subplots(len(sets), 2, figsize=(10, 4.6 * len(sets)), squeeze=False)
    for row, name in enumerate(sets):
        for col, (df, x, y, unit, label) in enumerate(
            [
                (e, "energy_ref_ev_per_atom", "energy_pred_ev_per_atom", "eV/atom", "energy"),
                (f, "force_ref", "force_pred", "eV/Å", "force component"),
            ]
        ):
            ax = axes[row][col]
            d = df[df["dataset"] == name]
            for ct, g in d.groupby("config_type"):
                ax.scatter(g[x], g[y], s=6 if col else 14, alpha=0.6, color=colours[str(ct)], label=str(ct))
            if len(d):
                lo, hi = float(min(d[x].min(), d[y].min())), float(max(d[x].max(), d[y].max()))
                ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
                rmse = float(np.sqrt(np.mean((d[y] - d[x]) ** 2)))
                scale, u = (1000.0, "meV/atom") if col == 0 else (1.0, unit)
                ax.set_title(f"{name}: {label}\nRMSE {scale * rmse:.3g} {u}", fontsize=9)
            ax.set_xlabel(f"reference {label} ({unit})")
            ax.set_ylabel(f"predicted {label} ({unit})")
            # large absolute energies (e.g. -852 eV/atom): offset notation, few ticks, no overlap
            ax.ticklabel_format(useOffset=True, style="plain")
            ax.xaxis.set_major_locator(plt.MaxNLocator(5))
            ax.yaxis.set_major_locator(plt.MaxNLocator(6))
            if col == 0:
                ax.legend(
                    fontsize=6 if d["config_type"].nunique() > 10 else 7,
                    markerscale=1.5,
                    ncol=2 if d["config_type"].nunique() > 10 else 1,
                )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return e, f


def config_type_errors_plot(errors: pd.DataFrame, png, dataset: str = "test set (the refitted best potential)") -> None:
    """Bar charts of energy and force RMSE per config_type (rows of a test_errors table);
    ``dataset`` names the data they were computed on (in the figure's title)."""
    plt = _plt()
    d = errors[errors["config_type"] != "all"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].bar(d["config_type"], d["energy_rmse_mev"], color="tab:blue")
    axes[0].set_ylabel("energy RMSE (meV/atom)")
    axes[1].bar(d["config_type"], d["force_rmse"], color="tab:orange")
    axes[1].set_ylabel("force RMSE (eV/Å)")
    for ax in axes:
        ax.set_xlabel("config_type")
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"errors per config_type on the {dataset}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def log_scale_wanted(values, log_prior: bool = False) -> bool:
    """A log axis for a log-uniform parameter, or for positive values spread over more than a
    factor of 20 (losses, where the good trials would be squashed at the bottom)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if not len(v) or (v <= 0).any():
        return False
    return bool(log_prior or v.max() / v.min() > 20)


def landscape_plot(table: pd.DataFrame, names: list[str], png, csv, log_names=()) -> pd.DataFrame:
    """Each searched hyperparameter vs the validation loss (successful trials); log axes for
    the names in ``log_names`` (log-uniform priors) and for a loss spread over decades."""
    plt = _plt()
    ok = table[ok_mask(table)]
    d = ok[["iteration", "trial_id", *names, "loss"]].copy()
    d.to_csv(csv, index=False)
    n = len(names)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
    for i, name in enumerate(names):
        ax = axes[i // ncol][i % ncol]
        x = d[name]
        if not pd.api.types.is_numeric_dtype(x):
            cats = sorted(x.astype(str).unique())
            x = x.astype(str).map({c: j for j, c in enumerate(cats)})
            ax.set_xticks(range(len(cats)), cats, rotation=30)
        ax.scatter(x, d["loss"], c=d["iteration"], cmap="viridis", s=18)
        if pd.api.types.is_numeric_dtype(d[name]) and log_scale_wanted(d[name], name in log_names):
            ax.set_xscale("log")
        if log_scale_wanted(d["loss"]):
            ax.set_yscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("validation loss")
    for j in range(n, nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return d


def important_dimensions(ok: pd.DataFrame, names: list[str], most: int = 6) -> list[str]:
    """The ``most`` dimensions whose values go with the loss the most (|Spearman rho| over the
    successful trials; categorical ones by their codes), in the space's order; all of them
    when there are at most ``most``. A grid of more panels is unreadable."""
    if len(names) <= most:
        return list(names)
    from scipy.stats import spearmanr

    score = {}
    for n in names:
        x = ok[n]
        if not pd.api.types.is_numeric_dtype(x):
            x = x.astype(str).astype("category").cat.codes
        rho = spearmanr(x, ok["loss"]).statistic if x.nunique() > 1 else 0.0
        score[n] = 0.0 if not np.isfinite(rho) else abs(float(rho))
    keep = set(sorted(names, key=lambda n: -score[n])[:most])
    return [n for n in names if n in keep]


def objective_plot(table: pd.DataFrame, space, opt_cfg: dict, png) -> bool:
    """skopt's partial dependence plot (``plot_objective``) of the surrogate fitted to the
    trial table. Returns False (and draws a note instead) when it cannot be made, e.g. with
    fewer successful trials than the model needs."""
    plt = _plt()
    from ..search.bayes import BayesOptimizer
    from ..search.loop import replay

    ok = table[ok_mask(table)]
    made = False
    if len(ok) >= 3 and len(space) >= 1:
        try:
            from skopt.plots import plot_objective

            opt = BayesOptimizer(
                space, seed=int(opt_cfg.get("seed", 0)), n_initial=1, base_estimator=opt_cfg.get("base_estimator", "GP")
            )
            replay(opt, ok, space)
            opt.ask(1)  # fits the surrogate on every told point
            res = opt.opt.get_result()
            dims = important_dimensions(ok, space.names)
            axes = plot_objective(res, dimensions=space.names, plot_dims=[space.names.index(n) for n in dims])
            fig = np.atleast_1d(axes).ravel()[0].figure
            fig.savefig(png, dpi=100)
            plt.close(fig)
            made = True
        except Exception as exc:  # a figure must not break a finished search
            note = f"partial dependence not available: {type(exc).__name__}: {exc}"
    else:
        note = f"partial dependence needs >= 3 successful trials (have {len(ok)})"
    if not made:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True)
        ax.axis("off")
        fig.savefig(png, dpi=100)
        plt.close(fig)
    return made


def pareto_front(cost: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of the points not dominated in (cost, loss), both minimised, sorted by cost."""
    order = np.lexsort((loss, cost))
    front, best = [], np.inf
    for i in order:
        if loss[i] < best:
            front.append(int(i))
            best = loss[i]
    return np.array(front, dtype=int)


#: the cost measures of the accuracy-vs-cost Pareto front: column -> axis label
COST_MEASURES = {
    "descriptor_length": "descriptor length",
    "predict_ms_per_atom": "prediction time (ms/atom, median of 3 passes)",
}


def cost_measure(table: pd.DataFrame) -> str:
    """The cost of the Pareto front: ``descriptor_length`` when every trial of ``table`` has
    one (a property of the hyperparameters, the same on any machine), else the measured
    ``predict_ms_per_atom`` (a median of repeated timings, still machine- and load-dependent)."""
    if "descriptor_length" in table.columns and len(table):
        length = pd.to_numeric(table["descriptor_length"], errors="coerce")
        if np.isfinite(length.to_numpy(float)).all():
            return "descriptor_length"
    return "predict_ms_per_atom"


def cost_plot(table: pd.DataFrame, png, csv) -> pd.DataFrame:
    """Accuracy vs cost: validation loss against the cost of :func:`cost_measure` with the
    Pareto front marked, and against the other measure where known. Returns the table with a
    ``pareto`` column and the ``cost_measure`` used (also in the CSV)."""
    plt = _plt()
    ok = table[ok_mask(table)].copy()
    cols = ["trial_id", "loss", "energy_rmse_mev", "force_rmse", "predict_ms_per_atom"]
    if "descriptor_length" in ok.columns:
        cols.append("descriptor_length")
    d = ok[cols].reset_index(drop=True)
    measure = cost_measure(d)
    d["cost_measure"] = measure
    d["pareto"] = False
    if len(d):
        idx = pareto_front(d[measure].to_numpy(float), d["loss"].to_numpy(float))
        d.loc[idx, "pareto"] = True
    d.to_csv(csv, index=False)
    others = [c for c in COST_MEASURES if c != measure and c in d.columns]
    ncol = 1 + len(others)
    fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol, 4), squeeze=False)
    ax = axes[0][0]
    ax.scatter(d[measure], d["loss"], s=18, color="0.5", label="trial")
    p = d[d["pareto"]].sort_values(measure)
    ax.plot(p[measure], p["loss"], "o-", color="crimson", label="Pareto front")
    ax.set_xlabel(COST_MEASURES[measure])
    ax.set_ylabel("validation loss")
    ax.set_title(f"Pareto front by {COST_MEASURES[measure].split(' (')[0]}", fontsize=9)
    ax.legend(fontsize=8)
    for ax2, other in zip(axes[0][1:], others):
        ax2.scatter(d[other], d["loss"], s=18, color="tab:blue")
        ax2.set_xlabel(COST_MEASURES[other])
        ax2.set_ylabel("validation loss")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return d


def isolated_atom_energies(calc, species: list[int], box: float = 20.0) -> dict[int, float]:
    """Energy of one atom of each species alone in a box, from ``calc``."""
    from ase import Atoms

    out = {}
    for z in species:
        a = Atoms(numbers=[z], positions=[[box / 2] * 3], cell=[box] * 3, pbc=False)
        a.calc = calc
        out[int(z)] = float(a.get_potential_energy())
    return out


def dimer_data(calc, species: list[int], r_min: float, r_max: float, n: int = 60, box: float = 20.0) -> pd.DataFrame:
    """Energy of an isolated pair vs distance for every pair of species: ``energy`` (eV) and
    ``binding`` = energy − the two isolated atoms' energies (both from ``calc``)."""
    from ase import Atoms
    from ase.data import chemical_symbols

    e_atom = isolated_atom_energies(calc, species, box)
    rows = []
    for i, zi in enumerate(species):
        for zj in species[i:]:
            for r in np.linspace(r_min, r_max, n):
                a = Atoms(numbers=[zi, zj], positions=[[0, 0, 0], [r, 0, 0]], cell=[box] * 3, pbc=False)
                a.center()
                a.calc = calc
                e = float(a.get_potential_energy())
                rows.append(
                    {
                        "pair": f"{chemical_symbols[zi]}-{chemical_symbols[zj]}",
                        "distance": r,
                        "energy": e,
                        "binding": e - e_atom[int(zi)] - e_atom[int(zj)],
                        "source": "potential",
                    }
                )
    return pd.DataFrame(rows)


def reference_dimers(frames, atom_energies: dict[int, float] | None = None) -> pd.DataFrame:
    """Isolated pairs in reference data (two atoms, separation well inside the cell), with
    ``binding`` = energy − the isolated atoms' reference energies (one-atom structures of the
    data), or − ``atom_energies`` (the potential's) for a species the data has no isolated
    atom of; ``relative_to`` says which."""
    from ase.data import chemical_symbols

    from ..data.read import REF_E

    ref_atoms = {int(a.numbers[0]): float(a.info[REF_E]) for a in frames if len(a) == 1 and REF_E in a.info}
    rows = []
    for a in frames:
        if len(a) != 2:
            continue
        r = float(a.get_distance(0, 1, mic=True))
        if a.cell.rank == 3 and r > 0.4 * min(a.cell.lengths()):
            continue  # a periodic crystal with two atoms per cell, not an isolated pair
        zi, zj = sorted(int(z) for z in a.numbers)
        e = float(a.info[REF_E])
        if zi in ref_atoms and zj in ref_atoms:
            binding, rel = e - ref_atoms[zi] - ref_atoms[zj], "reference isolated atoms"
        elif atom_energies and zi in atom_energies and zj in atom_energies:
            binding, rel = e - atom_energies[zi] - atom_energies[zj], "the potential's isolated atoms"
        else:
            binding, rel = math.nan, ""
        rows.append(
            {
                "pair": f"{chemical_symbols[zi]}-{chemical_symbols[zj]}",
                "distance": r,
                "energy": e,
                "binding": binding,
                "relative_to": rel,
                "source": "reference",
            }
        )
    return pd.DataFrame(rows, columns=["pair", "distance", "energy", "binding", "relative_to", "source"])


def dimer_limits(curve: pd.DataFrame, ref: pd.DataFrame) -> tuple[float, float] | None:
    """y-limits that show every curve's well and its tail: from the lowest point of any curve
    or reference pair to above the highest value at the curves' largest distance."""
    values = pd.concat([curve["binding"], ref["binding"] if len(ref) else pd.Series(dtype=float)]).dropna()
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo = float(values.min())
    tails = curve.sort_values("distance").groupby("pair")["binding"].last()
    hi = max(float(tails.max()) if len(tails) else lo, 0.0)
    span = max(hi - lo, 1e-3)
    return lo - 0.15 * span, hi + 0.6 * span


def dimer_plot(curve: pd.DataFrame, ref: pd.DataFrame, png, csv) -> pd.DataFrame:
    """Binding energy of isolated pairs vs distance (relative to the isolated atoms), the
    potential's curves and the reference pairs, with limits set from every curve."""
    plt = _plt()
    d = pd.concat([curve, ref], ignore_index=True)
    d.to_csv(csv, index=False)
    fig, ax = plt.subplots(figsize=(6, 4))
    for pair, g in curve.groupby("pair"):
        ax.plot(g["distance"], g["binding"], label=f"{pair} potential")
    for pair, g in ref.groupby("pair"):
        ax.scatter(g["distance"], g["binding"], s=16, label=f"{pair} reference", zorder=3)
    lim = dimer_limits(curve, ref)
    if lim:
        ax.set_ylim(*lim)
    ax.axhline(0.0, color="0.7", lw=0.8, zorder=0)
    ax.set_xlabel("distance (Å)")
    ax.set_ylabel("energy − isolated atoms (eV)")
    ax.set_title("isolated pair")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return d


# ----------------------------------------------------------------------------- kernel figures (two-stage)
