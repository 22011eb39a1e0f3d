"""PPSO's two-stage strategy (Kondati Natarajan & Caro, arXiv:2101.00049).

Stage 1 searches the SOAP shape hyperparameters and zeta by the shape of the kernel
distribution of the training environments (:mod:`potune.kernel`) — no GAP is fitted. Stage 2
is the ordinary search loop over the GAP hyperparameters (delta, sigma_E, sigma_F,
n_sparse, ...) by validation loss, with stage 1's best descriptor held fixed.

Configuration (see config/README.md): ``strategy: two_stage``; ``stage1: {space, optimizer,
stop}`` for stage 1 (``stage1.optimizer`` is merged over ``optimizer``); the top-level
``space``/``optimizer``/``stop`` are stage 2; ``fixed`` serves both (stage 1 reads its
descriptor entries). ``kernel`` sets the statistics, ``refit_forces`` the extra refit.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import data as D
from .errors import ConfigError
from .io import read_json, read_yaml, write_json, write_yaml
from .kernel import OBJECTIVES, kernel_objective, kernel_stats
from .search import best_trial
from .soap import STAGE1_HYPERPARAMETERS, soap_dimension, soap_vectors
from .space import Space
from .trials import append_rows, read_table, write_table

STAGE1_COLUMNS = ["kernel_mean", "kernel_std", "kernel_skew", "kernel_abs_skew", "soap_dim", "n_env", "n_pairs",
                  "kernel_time_s"]


def say(msg: str) -> None:
    print(f"[potune] {msg}", flush=True)


# ----------------------------------------------------------------------------- configuration
def is_two_stage(cfg: dict) -> bool:
    return cfg.get("strategy", "joint") == "two_stage"


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def stage1_config(cfg: dict) -> dict:
    """The configuration stage 1 runs with: its own space, optimiser (``stage1.optimizer``
    merged over ``optimizer``; priors only from ``stage1.optimizer.priors``) and stop rules;
    ``fixed`` reduced to the descriptor hyperparameters and zeta."""
    s1 = cfg.get("stage1") or {}
    opt = _merge(cfg["optimizer"], s1.get("optimizer") or {})
    opt["priors"] = (s1.get("optimizer") or {}).get("priors")
    out = copy.deepcopy(cfg)
    out["space"] = copy.deepcopy(s1.get("space") or {})
    out["optimizer"] = opt
    out["stop"] = copy.deepcopy(s1.get("stop") or {})
    out["fixed"] = {k: v for k, v in (cfg.get("fixed") or {}).items() if k in STAGE1_HYPERPARAMETERS}
    return out


def stage2_config(cfg: dict, stage1_best: str | os.PathLike | dict) -> dict:
    """``cfg`` with stage 1's best descriptor hyperparameters added to ``fixed``."""
    best = read_yaml(stage1_best) if not isinstance(stage1_best, dict) else stage1_best
    out = copy.deepcopy(cfg)
    out["fixed"] = {**(cfg.get("fixed") or {}), **best["point"]}
    return out


def check_config(cfg: dict) -> None:
    """Meaning of the two-stage keys (after the schema): raises :class:`ConfigError`."""
    obj = (cfg.get("kernel") or {}).get("objective") or {}
    if obj.get("kind", "std_skew") not in OBJECTIVES:
        raise ConfigError(f"kernel.objective.kind: {obj.get('kind')!r} is not one of {', '.join(OBJECTIVES)}")
    if cfg.get("refit_forces") and not (cfg.get("gap") or {}).get("energy_only"):
        raise ConfigError("refit_forces: the search already trains on forces (gap.energy_only is false); "
                          "set gap.energy_only: true to compare an energy-only search with a refit on forces")
    if cfg.get("refit_forces") and cfg["fitter"] != "gap":
        raise ConfigError("refit_forces: only for fitter gap")
    if not is_two_stage(cfg):
        return
    if cfg["fitter"] != "gap":
        raise ConfigError(f"strategy: two_stage needs fitter gap (SOAP descriptors), got {cfg['fitter']!r}")
    s1 = cfg.get("stage1") or {}
    space1 = Space.from_config(s1.get("space") or {}) if s1.get("space") else None
    if space1 is None:
        raise ConfigError("stage1.space: strategy two_stage needs a stage-1 search space (SOAP hyperparameters, zeta)")
    wrong = [n for n in space1.names if n not in STAGE1_HYPERPARAMETERS]
    if wrong:
        raise ConfigError(
            f"stage1.space.{wrong[0]}: not a descriptor hyperparameter; stage 1 searches only "
            f"{', '.join(sorted(STAGE1_HYPERPARAMETERS))} (put GAP hyperparameters in space)"
        )
    both = sorted(set(space1.names) & set(cfg.get("space") or {}))
    if both:
        raise ConfigError(f"stage1.space.{both[0]}: also in space; stage 2 holds stage 1's best value fixed")
    both = sorted(set(space1.names) & set(cfg.get("fixed") or {}))
    if both:
        raise ConfigError(f"fixed.{both[0]}: is also in stage1.space; a hyperparameter is either fixed or searched")
    from .gap import check_config as gap_check
    from .optimizers import REGISTRY

    gap_check({**cfg, "space": s1["space"]}, space1)
    kind = (s1.get("optimizer") or {}).get("kind")  # else optimizer.kind, checked with the rest of optimizer
    if kind is not None and kind not in REGISTRY:
        raise ConfigError(f"stage1.optimizer.kind: unknown optimiser {kind!r}; available: {', '.join(sorted(REGISTRY))}")


# ----------------------------------------------------------------------------- stage 1 steps
def read_environments(train_file: str | os.PathLike, kernel_cfg: dict) -> list:
    """Training structures for the kernel statistics (a seeded subset if
    ``kernel.max_structures`` is set)."""
    frames = D.read_normalised(train_file)
    cap = kernel_cfg.get("max_structures")
    if cap and len(frames) > int(cap):
        idx = np.sort(np.random.default_rng(int(kernel_cfg.get("seed", 0))).choice(len(frames), int(cap), replace=False))
        frames = [frames[i] for i in idx]
    return frames


def descriptor_kernel_stats(frames: Sequence, params: dict, settings: dict, kernel_cfg: dict):
    """SOAP vectors of ``frames`` for ``params`` and the statistics of their kernel."""
    hp = {k: v for k, v in params.items() if k in STAGE1_HYPERPARAMETERS}
    sv = soap_vectors(frames, hp, settings)
    zeta = float(params.get("zeta", 4))
    st = kernel_stats(sv.vectors, zeta, n_sample=int(kernel_cfg.get("n_sample", 3000)),
                      seed=int(kernel_cfg.get("seed", 0)), bins=int(kernel_cfg.get("bins", 100)),
                      groups=sv.central_z, max_block_mb=float(kernel_cfg.get("max_block_mb", 256)))
    return sv, st


def kernel_target_alignment(sv, frames: Sequence, zeta: float, n_sample: int = 3000, seed: int = 0) -> float:
    """Kernel-target alignment <K, y y^T> / (|K| |y y^T|) of the per-atom energies.

    ``y`` is each environment's structure energy per atom (``REF_energy / N``), centred; K the
    kernel ``(q_i . q_j)^zeta`` between ``n_sample`` random environments (as
    :func:`potune.kernel.kernel_stats`) and all of them. Close to 1 when environments the kernel
    calls similar have similar energies. Needs the energies, so it is *not* a PPSO stage-1
    criterion; :func:`objective_check` reports it as a reference.
    """
    from .kernel import _power, sample_rows

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
        row = {"trial_id": t["trial_id"], "loss": float(t["loss"]), "energy_rmse_mev": float(t["energy_rmse_mev"]),
               "force_rmse": float(t["force_rmse"]), "mean": st.mean, "std": st.std, "skew": st.skew}
        for kind in OBJECTIVES:
            row[f"crit_{kind}"] = kernel_objective(st, {**(kcfg.get("objective") or {}), "kind": kind})["loss"]
        row["crit_alignment"] = -kernel_target_alignment(sv, frames, float(params.get("zeta", 4)),
                                                         int(kcfg.get("n_sample", 3000)), int(kcfg.get("seed", 0)))
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
        out.append({"criterion": c[len("crit_"):], "spearman_rho": float(spearmanr(df[c], df["loss"]).statistic),
                    "rank_of_best": int((df[c] < df.loc[best, c]).sum()) + 1,
                    "loss_of_pick": float(order["loss"].iloc[0]),
                    f"median_loss_top{top}": float(order["loss"].iloc[:top].median()),
                    "best_loss": float(df["loss"].min()), "median_loss": float(df["loss"].median()),
                    "trials": len(df)})
    return pd.DataFrame(out)


def kernel_step(params_file, train_file, out_json, out_hist, settings: dict, kernel_cfg: dict) -> dict:
    """Stage-1 trial: kernel statistics of one descriptor proposal. No GAP is fitted.

    A descriptor quippy cannot build or evaluate is a failed trial (recorded, not raised).
    """
    prop = read_yaml(params_file)
    params = {**(prop.get("fixed") or {}), **prop["point"]}
    t0 = time.perf_counter()
    try:
        frames = read_environments(train_file, kernel_cfg)
        sv, st = descriptor_kernel_stats(frames, params, settings, kernel_cfg)
        terms = kernel_objective(st, kernel_cfg.get("objective"))
        if not math.isfinite(terms["loss"]):
            raise ValueError(f"non-finite kernel objective {terms['loss']}")
        out = {"status": "ok", "reason": "", **terms, "soap_dim": int(sv.vectors.shape[1]),
               "soap_dim_formula": soap_dimension(params, settings, len(set(sv.central_z.tolist()))),
               "n_env": st.n_env, "n_pairs": st.n_pairs, "n_sample": st.n_sample}
        Path(out_hist).parent.mkdir(parents=True, exist_ok=True)
        st.histogram_table().to_csv(out_hist, index=False)
        say(f"descriptor trial {prop['trial_id']}: loss {terms['loss']:.5g}  mean {st.mean:.4f}  std {st.std:.4f}  "
            f"skew {st.skew:.3f}  ({st.n_env} environments, dim {sv.vectors.shape[1]})")
    except Exception as exc:  # a descriptor that cannot be computed is a failed trial
        out = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
        pd.DataFrame(columns=["bin_low", "bin_high", "bin_centre", "count", "density"]).to_csv(out_hist, index=False)
        say(f"descriptor trial {prop['trial_id']}: FAILED ({out['reason'][:200]})")
    out["trial_id"] = prop["trial_id"]
    out["kernel_time_s"] = time.perf_counter() - t0
    write_json(out_json, out)
    return out


def stage1_row(params_file, kernel_json) -> dict:
    prop = read_yaml(params_file)
    res = read_json(kernel_json)
    row = {"iteration": int(prop["iteration"]), "trial": prop["trial"], "trial_id": prop["trial_id"], **prop["point"]}
    for k, v in (prop.get("fixed") or {}).items():
        row.setdefault(k, v)
    row["status"], row["reason"] = res["status"], res.get("reason", "")
    row["loss"] = res.get("loss", math.nan) if res["status"] == "ok" else math.nan
    for c in STAGE1_COLUMNS:
        row[c] = res.get(c, math.nan)
    row["params_file"] = str(params_file)
    return row


def collect_stage1(cfg1: dict, iteration: int, previous_table, proposals_dir, kernel_files: dict[str, str], out_table):
    """Append one stage-1 iteration to the stage-1 table (``cfg1``: :func:`stage1_config`)."""
    prev = read_table(previous_table) if previous_table else None
    rows = [stage1_row(Path(proposals_dir) / f"{t}.yaml", f) for t, f in sorted(kernel_files.items())]
    names = list(cfg1["space"]) + [k for k in (cfg1.get("fixed") or {}) if k not in cfg1["space"]]
    table = append_rows(prev, rows, names)
    head = [c for c in ["iteration", "trial", "trial_id", *names, "status", "reason", "loss", *STAGE1_COLUMNS]
            if c in table.columns]
    table = table[head + [c for c in table.columns if c not in head]]
    write_table(out_table, table)
    best = best_trial(table)
    n_failed = sum(r["status"] != "ok" for r in rows)
    txt = f"best kernel objective {float(best['loss']):.5g} (trial {best['trial_id']})" if best else "no successful trial yet"
    say(f"stage 1 iteration {iteration} done: {len(rows)} descriptor trial(s), {n_failed} failed; {txt}")
    return table


def best_descriptor_step(cfg1: dict, table_file, out_file) -> dict:
    """Stage 1's best descriptor (``point``: its searched values, ``fixed``: the held ones)."""
    table = read_table(table_file)
    best = best_trial(table)
    if best is None:
        reasons = table["reason"].value_counts().head(3).to_dict() if len(table) else {}
        raise RuntimeError(f"stage 1: no descriptor trial succeeded ({len(table)} failed); reasons: {reasons}")
    space = Space.from_config(cfg1["space"])
    point = space.to_dict([best[n] for n in space.names])
    doc = {"trial_id": best["trial_id"], "iteration": int(best["iteration"]), "loss": float(best["loss"]),
           **{c: (int(best[c]) if c in ("soap_dim", "n_env", "n_pairs") else float(best[c]))
              for c in STAGE1_COLUMNS if c in best},
           "point": point, "fixed": cfg1.get("fixed") or {}, "hyperparameters": {**(cfg1.get("fixed") or {}), **point},
           "objective": (cfg1.get("kernel") or {}).get("objective")}
    write_yaml(out_file, doc)
    say(f"stage 1 done: best descriptor {best['trial_id']} (objective {float(best['loss']):.5g}, "
        f"std {float(best['kernel_std']):.4f}, skew {float(best['kernel_skew']):.3f}); stage 2 holds it fixed")
    return doc


def stage1_summary_lines(table_file, best_file, stop_file) -> list[str]:
    """The stage-1 section of summary.md: budget, stop reason and the descriptor stage 2 held."""
    table = read_table(table_file)
    best = read_yaml(best_file)
    n_failed = int((table["status"] != "ok").sum())
    lines = ["## Stage 1: descriptor search by kernel statistics (no GAP fitted)", "",
             f"- descriptor trials: {len(table)} in {table['iteration'].nunique()} iteration(s), {n_failed} failed; "
             f"total kernel time {table['kernel_time_s'].sum():.0f} s",
             f"- stop reason: {read_yaml(stop_file)['reason']}",
             f"- best descriptor: {best['trial_id']} (objective {best['loss']:.5g}; kernel mean "
             f"{best['kernel_mean']:.4f}, std {best['kernel_std']:.4f}, skew {best['kernel_skew']:.3f}); "
             "stage 2 held these values fixed:", "",
             "| descriptor hyperparameter | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in best["hyperparameters"].items()]
    return lines + [""]


def refit_comparison_lines(csv) -> list[str]:
    """The summary.md section comparing the refit as searched with the refit on energies and forces."""
    df = pd.read_csv(csv)
    lines = ["", "## Refit as searched vs with forces (test set)", "",
             "| fit | E RMSE (meV/atom) | F RMSE (eV/Å) | fit time (s) |", "|---|---|---|---|"]
    lines += [f"| {r.fit} | {r.energy_rmse_mev:.3f} | {r.force_rmse:.4f} | {r.fit_wall_s:.0f} |" for r in df.itertuples()]
    return lines


# ----------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def kernel_figure_step(best_file, train_file, settings: dict, kernel_cfg: dict, png, csv, out_json) -> dict:
    """Kernel distribution of the best hyperparameters' SOAP (PPSO Figs. 5, 7, 9-11)."""
    best = read_yaml(best_file)
    params = best["hyperparameters"]
    frames = read_environments(train_file, kernel_cfg)
    sv, st = descriptor_kernel_stats(frames, params, settings, kernel_cfg)
    hist = st.histogram_table()
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    hist.to_csv(csv, index=False)
    terms = kernel_objective(st, kernel_cfg.get("objective"))
    doc = {**terms, "n_env": st.n_env, "n_pairs": st.n_pairs, "n_sample": st.n_sample, "zeta": st.zeta,
           "soap_dim": int(sv.vectors.shape[1]), "trial_id": best.get("trial_id")}
    write_json(out_json, doc)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    keep = hist[hist["bin_high"] > 0] if (hist["bin_low"] < 0).any() and hist.loc[hist["bin_low"] < 0, "count"].sum() == 0 else hist
    ax.bar(keep["bin_centre"], keep["density"], width=(keep["bin_high"] - keep["bin_low"]), color="steelblue",
           edgecolor="none")
    ax.set_xlabel(r"kernel $k = (\mathbf{q}_i\cdot\mathbf{q}_j)^\zeta$")
    ax.set_ylabel("density")
    ax.set_title(f"best SOAP ({best.get('trial_id')}): mean {st.mean:.3f}, std {st.std:.3f}, skew {st.skew:.2f}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return doc


def similarity_step(best_file, train_file, settings: dict, n_reference: int, png, csv) -> pd.DataFrame:
    """Similarity of selected environments vs interatomic distance, for a dimer data set
    (PPSO Figs. 4, 6, 8): ``k(r, r_ref) = (q(r) . q(r_ref))^zeta`` for every dimer distance
    ``r`` and ``n_reference`` reference distances spread over the curve."""
    best = read_yaml(best_file)
    params = best["hyperparameters"]
    frames = D.read_normalised(train_file)
    dimers = [a for a in frames if len(a) == 2]
    if len(dimers) < 2:
        raise ValueError(f"{train_file}: the similarity curve needs a dimer data set (2-atom structures); "
                         f"found {len(dimers)} (set kernel.similarity_curve: false)")
    r = np.array([a.get_distance(0, 1, mic=True) for a in dimers])
    order = np.argsort(r)
    dimers, r = [dimers[i] for i in order], r[order]
    hp = {k: v for k, v in params.items() if k in STAGE1_HYPERPARAMETERS}
    sv = soap_vectors(dimers, hp, settings)
    first = np.array([np.flatnonzero(sv.structure == i)[0] for i in range(len(dimers))])  # atom 0's environment
    Q = sv.vectors[first]
    zeta = float(params.get("zeta", 4))
    refs = np.unique(np.linspace(0, len(dimers) - 1, max(1, int(n_reference))).round().astype(int))
    G = np.clip(Q @ Q[refs].T, -1, 1)
    K = np.where(G > 0, G, 0.0) ** zeta if not zeta.is_integer() else G ** int(zeta)
    df = pd.DataFrame({"distance": r})
    for j, i in enumerate(refs):
        df[f"k_ref_{r[i]:.2f}A"] = K[:, j]
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, i in enumerate(refs):
        ax.plot(r, K[:, j], marker="o", ms=3, label=f"ref. r = {r[i]:.2f} Å")
    ax.set_xlabel("interatomic distance r (Å)")
    ax.set_ylabel(r"similarity $(\mathbf{q}(r)\cdot\mathbf{q}(r_\mathrm{ref}))^\zeta$")
    ax.set_title(f"dimer similarity, best SOAP ({best.get('trial_id')}), zeta = {zeta:g}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return df


# ----------------------------------------------------------------------------- refit with forces
def refit_comparison_step(search_metrics, forces_metrics, search_fit, forces_fit, energy_only: bool, out_csv) -> pd.DataFrame:
    """Test errors of the refit as searched (e.g. energies only) and of the refit on energies
    and forces, side by side (PPSO Table 5)."""
    rows = []
    for label, mfile, ffile in (("as searched" + (" (energies only)" if energy_only else ""), search_metrics, search_fit),
                                ("energies + forces", forces_metrics, forces_fit)):
        m, f = read_json(mfile), read_json(ffile)
        rows.append({"fit": label, "energy_rmse_mev": m["energy_rmse_mev"], "force_rmse": m["force_rmse"],
                     "energy_mae_mev": m["energy_mae_mev"], "force_mae": m["force_mae"], "fit_wall_s": f["wall_s"]})
    df = pd.DataFrame(rows)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    for r in rows:
        say(f"test set, {r['fit']}: E {r['energy_rmse_mev']:.3f} meV/atom, F {r['force_rmse']:.4f} eV/A")
    return df
