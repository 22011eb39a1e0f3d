"""The two-stage strategy's rule steps: stage 1's descriptor trials by kernel statistics
(no GAP fitted) or by proxy fits (the training subset here; the fit and its validation are
the ordinary :func:`potune.steps.fit.fit_step` and :func:`potune.steps.validate.validate_step`),
its trial table and best descriptor, the kernel and similarity figures of the best SOAP,
and the comparison of the refit with forces. Its configuration is in
:mod:`potune.search.twostage`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import data as D
from .. import faults
from ..cluster.attempts import guarded_attempt, last_attempt_reason
from ..console import say
from ..descriptors.kernel import kernel_objective
from ..descriptors.objective_check import descriptor_kernel_stats, read_environments
from ..descriptors.soap import STAGE1_HYPERPARAMETERS, soap_dimension, soap_vectors
from ..errors import FitterError, PotuneError, exception_text
from ..io import read_json, read_yaml, write_json, write_yaml
from ..report.plots import _plt
from ..search.loop import best_trial
from ..search.space import Space
from ..search.twostage import stage1_objective
from ..trials import append_rows, read_table, write_table
from .collect import same_exception

STAGE1_COLUMNS = [
    "kernel_mean",
    "kernel_std",
    "kernel_skew",
    "kernel_abs_skew",
    "soap_dim",
    "n_env",
    "n_pairs",
    "kernel_time_s",
]
#: the columns of a stage-1 trial scored by a proxy fit (objective proxy)
PROXY_COLUMNS = [
    "energy_rmse_mev",
    "force_rmse",
    "energy_mae_mev",
    "force_mae",
    "fit_wall_s",
    "fit_cpu_s",
]
#: a proxy trial's result file (its fit.json beside it); a kernel trial's is kernel.json
PROXY_RESULT = "valid.json"


def proxy_train_step(train_file, out_file, max_structures: int | None, seed: int, always_train) -> int:
    """Stage 1's proxy training set: a seeded subset of ``max_structures`` of the fold-0
    training structures (plus its isolated atoms / ``always_train`` config_types). Returns
    the number of structures written."""
    frames = D.read_normalised(train_file)
    idx = D.training_subset(frames, max_structures, seed, always_train)
    D.write_structures(out_file, [frames[i] for i in idx])
    say(f"stage 1 proxy fits: {len(idx)} of the {len(frames)} training structures of fold 0 (seed {seed})")
    return len(idx)


def kernel_step(
    params_file,
    train_file,
    out_json,
    out_hist,
    settings: dict,
    kernel_cfg: dict,
    attempt: int = 1,
    max_attempts: int | None = None,
) -> dict:
    """Stage-1 trial: kernel statistics of one descriptor proposal. No GAP is fitted.

    A descriptor quippy cannot build or evaluate (:class:`potune.errors.FitterError`), a
    non-finite objective, running out of memory, and a job killed from outside on every
    attempt but the last (which records it without computing again) are failed trials,
    recorded. Any other exception is an error of potune and is raised.
    """
    prop = read_yaml(params_file)
    params = {**(prop.get("fixed") or {}), **prop["point"]}
    attempts = Path(out_json).parent / "kernel_attempts.jsonl"
    killed = last_attempt_reason(attempts, attempt, max_attempts, None, None, what="kernel")
    t0 = time.perf_counter()
    if killed:
        out = {"status": "failed", "reason": f"kernel statistics {killed}"}
    else:
        with guarded_attempt(attempts, attempt):
            faults.inject("kernel", prop["trial_id"])
            try:
                frames = read_environments(train_file, kernel_cfg)
                sv, st = descriptor_kernel_stats(frames, params, settings, kernel_cfg)
                terms = kernel_objective(st, kernel_cfg.get("objective"))
                if not math.isfinite(terms["loss"]):
                    raise FitterError(f"non-finite kernel objective {terms['loss']}")
                out = {
                    "status": "ok",
                    "reason": "",
                    **terms,
                    "soap_dim": int(sv.vectors.shape[1]),
                    "soap_dim_formula": soap_dimension(params, settings, len(set(sv.central_z.tolist()))),
                    "n_env": st.n_env,
                    "n_pairs": st.n_pairs,
                    "n_sample": st.n_sample,
                }
                Path(out_hist).parent.mkdir(parents=True, exist_ok=True)
                st.histogram_table().to_csv(out_hist, index=False)
                say(
                    f"descriptor trial {prop['trial_id']}: loss {terms['loss']:.5g}  mean {st.mean:.4f}  "
                    f"std {st.std:.4f}  skew {st.skew:.3f}  ({st.n_env} environments, dim {sv.vectors.shape[1]})"
                )
            except (FitterError, MemoryError) as exc:  # the descriptor cannot be computed: a failed trial
                cause = exc.__cause__ if isinstance(exc, FitterError) and exc.__cause__ is not None else exc
                text = exception_text(exc) if isinstance(exc, MemoryError) else str(exc)
                out = {"status": "failed", "reason": text[:500], "exception": exception_text(cause)[:500]}
    if out["status"] != "ok":
        pd.DataFrame(columns=["bin_low", "bin_high", "bin_centre", "count", "density"]).to_csv(out_hist, index=False)
        say(f"descriptor trial {prop['trial_id']}: FAILED ({out['reason'][:200]})")
    out["trial_id"] = prop["trial_id"]
    out["kernel_time_s"] = time.perf_counter() - t0
    write_json(out_json, out)
    return out


def stage1_row(params_file, result_json) -> dict:
    """One stage-1 trial's table row from its proposal and its result: ``kernel.json``
    (kernel statistics), or ``valid.json`` of a proxy fit, whose ``fit.json`` is beside it."""
    prop = read_yaml(params_file)
    res = read_json(result_json)
    row = {"iteration": int(prop["iteration"]), "trial": prop["trial"], "trial_id": prop["trial_id"], **prop["point"]}
    for k, v in (prop.get("fixed") or {}).items():
        row.setdefault(k, v)
    row["status"], row["reason"] = res["status"], res.get("reason", "")
    row["loss"] = res.get("loss", math.nan) if res["status"] == "ok" else math.nan
    if Path(result_json).name == PROXY_RESULT:
        fit = read_json(Path(result_json).with_name("fit.json"))
        res = {**res, "fit_wall_s": fit.get("wall_s", math.nan), "fit_cpu_s": fit.get("cpu_s", math.nan)}
        columns = PROXY_COLUMNS
    else:
        columns = STAGE1_COLUMNS
    for c in columns:
        row[c] = res.get(c, math.nan)
    row["params_file"] = str(params_file)
    return row


def collect_stage1(cfg1: dict, iteration: int, previous_table, proposals_dir, result_files: dict[str, str], out_table):
    """Append one stage-1 iteration to the stage-1 table (``cfg1``: :func:`stage1_config`;
    ``result_files``: trial -> its ``kernel.json`` or, proxy fits, ``valid.json``)."""
    prev = read_table(previous_table) if previous_table else None
    rows = [stage1_row(Path(proposals_dir) / f"{t}.yaml", f) for t, f in sorted(result_files.items())]
    common = same_exception([read_json(f).get("exception") for _, f in sorted(result_files.items())])
    if common:
        raise PotuneError(
            f"stage 1: every descriptor trial of iteration {iteration} ({len(rows)}) failed with the same Python "
            f"exception: {common}. That is not a property of the hyperparameters (check the installation and "
            "the data); the search stops here"
        )
    names = list(cfg1["space"]) + [k for k in (cfg1.get("fixed") or {}) if k not in cfg1["space"]]
    table = append_rows(prev, rows, names)
    head = [
        c
        for c in ["iteration", "trial", "trial_id", *names, "status", "reason", "loss", *STAGE1_COLUMNS, *PROXY_COLUMNS]
        if c in table.columns
    ]
    table = table[head + [c for c in table.columns if c not in head]]
    write_table(out_table, table)
    best = best_trial(table)
    n_failed = sum(r["status"] != "ok" for r in rows)
    txt = (
        f"best stage-1 objective {float(best['loss']):.5g} (trial {best['trial_id']})"
        if best
        else "no successful trial yet"
    )
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
    objective = stage1_objective(cfg1)
    # the descriptor held in stage 2 (a proxy's own GAP settings, n_sparse, delta, ..., are not)
    fixed = {k: v for k, v in (cfg1.get("fixed") or {}).items() if k in STAGE1_HYPERPARAMETERS}
    doc = {
        "trial_id": best["trial_id"],
        "iteration": int(best["iteration"]),
        "loss": float(best["loss"]),
        **{
            c: (int(best[c]) if c in ("soap_dim", "n_env", "n_pairs") else float(best[c]))
            for c in STAGE1_COLUMNS + PROXY_COLUMNS
            if c in best
        },
        "point": point,
        "fixed": fixed,
        "hyperparameters": {**fixed, **point},
        "stage1_objective": objective,
        "objective": (cfg1.get("kernel") or {}).get("objective") if objective == "kernel" else None,
    }
    write_yaml(out_file, doc)
    what = (
        f"std {float(best['kernel_std']):.4f}, skew {float(best['kernel_skew']):.3f}"
        if objective == "kernel"
        else f"proxy fit E {float(best['energy_rmse_mev']):.3g} meV/atom, F {float(best['force_rmse']):.4g} eV/A"
    )
    say(
        f"stage 1 done: best descriptor {best['trial_id']} (objective {float(best['loss']):.5g}, {what}); "
        "stage 2 holds it fixed"
    )
    return doc


def figure_attempt(step: str, what: str, attempts: Path, attempt: int, max_attempts: int | None, work) -> str:
    """Run ``work()``, the in-process work of a figure job (rules ``kernel_figure``,
    ``similarity_curve``), so that its failure is a recorded outcome: returns ``''`` when it
    ran, else why it failed: the job was killed from outside on every attempt but this last
    one (out of memory, out of time, a segfault of quippy), or quippy could not compute the
    descriptor (:class:`potune.errors.FitterError`) or ran out of memory. Any other
    exception is an error of potune and is raised (and noted for the next attempt, see
    :func:`potune.cluster.attempts.guarded_attempt`).

    Parameters
    ----------
    step
        The fault-injection name of the step (:func:`potune.faults.inject`).
    what
        What the reason names ("kernel figure").
    attempts
        The job's ``attempts.jsonl``.
    """
    killed = last_attempt_reason(attempts, attempt, max_attempts, None, None, what="kernel")
    if killed:
        return f"{what} {killed}"
    with guarded_attempt(attempts, attempt):
        try:
            faults.inject(step)
            work()
        except (FitterError, MemoryError) as exc:
            return (exception_text(exc) if isinstance(exc, MemoryError) else str(exc))[:500]
    return ""


def record_figure_failure(what: str, reason: str, png, csv, out_json) -> dict:
    """A figure job's recorded failure: ``out_json`` ``{"status": "failed", "reason": ...}``,
    an empty ``csv`` and a figure that says why; the summary states it."""
    from .report import failed_figure

    out = {"status": "failed", "reason": reason}
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    Path(csv).write_text("")
    failed_figure(png, f"{what} failed\n{reason[:200]}")
    write_json(out_json, out)
    say(f"{what.upper()} FAILED: {reason[:300]}")
    return out


def kernel_figure_step(
    best_file,
    train_file,
    settings: dict,
    kernel_cfg: dict,
    png,
    csv,
    out_json,
    attempt: int = 1,
    max_attempts: int | None = None,
) -> dict:
    """Kernel distribution of the best hyperparameters' SOAP (PPSO Figs. 5, 7, 9-11).

    ``out_json`` holds the statistics and ``status`` ``ok``, or ``status`` ``failed`` with
    ``reason`` when the job was killed on every attempt but the last, or quippy failed
    (:func:`figure_attempt`); the run goes on and summary.md says so."""
    attempts = Path(out_json).with_name("kernel_figure_attempts.jsonl")
    done: dict = {}
    reason = figure_attempt(
        "kernel_figure",
        "kernel figure",
        attempts,
        attempt,
        max_attempts,
        lambda: done.update(_kernel_figure(best_file, train_file, settings, kernel_cfg, png, csv)),
    )
    if reason:
        return record_figure_failure("kernel figure", reason, png, csv, out_json)
    doc = {"status": "ok", "reason": "", **done}
    write_json(out_json, doc)
    return doc


def _kernel_figure(best_file, train_file, settings: dict, kernel_cfg: dict, png, csv) -> dict:
    best = read_yaml(best_file)
    params = best["hyperparameters"]
    frames = read_environments(train_file, kernel_cfg)
    sv, st = descriptor_kernel_stats(frames, params, settings, kernel_cfg)
    hist = st.histogram_table()
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    hist.to_csv(csv, index=False)
    terms = kernel_objective(st, kernel_cfg.get("objective"))
    doc = {
        **terms,
        "n_env": st.n_env,
        "n_pairs": st.n_pairs,
        "n_sample": st.n_sample,
        "zeta": st.zeta,
        "soap_dim": int(sv.vectors.shape[1]),
        "trial_id": best.get("trial_id"),
    }
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    keep = (
        hist[hist["bin_high"] > 0]
        if (hist["bin_low"] < 0).any() and hist.loc[hist["bin_low"] < 0, "count"].sum() == 0
        else hist
    )
    ax.bar(
        keep["bin_centre"],
        keep["density"],
        width=(keep["bin_high"] - keep["bin_low"]),
        color="steelblue",
        edgecolor="none",
    )
    ax.set_xlabel(r"kernel $k = (\mathbf{q}_i\cdot\mathbf{q}_j)^\zeta$")
    ax.set_ylabel("density")
    ax.set_title(
        f"best SOAP ({best.get('trial_id')}): mean {st.mean:.3f}, std {st.std:.3f}, skew {st.skew:.2f}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return doc


def similarity_step(
    best_file,
    train_file,
    settings: dict,
    n_reference: int,
    png,
    csv,
    out_json=None,
    attempt: int = 1,
    max_attempts: int | None = None,
) -> pd.DataFrame | None:
    """Similarity of selected environments vs interatomic distance, for a dimer data set
    (PPSO Figs. 4, 6, 8): ``k(r, r_ref) = (q(r) . q(r_ref))^zeta`` for every dimer distance
    ``r`` and ``n_reference`` reference distances spread over the curve.

    ``out_json`` (default ``similarity.json`` beside ``csv``) holds ``status`` ``ok``, or
    ``failed`` with ``reason`` when the job was killed on every attempt but the last, or
    quippy failed (:func:`figure_attempt`): then the result is None, the run goes on and
    summary.md says so."""
    out_json = Path(out_json) if out_json is not None else Path(csv).with_name("similarity.json")
    attempts = out_json.with_name("similarity_attempts.jsonl")
    done: list = []
    reason = figure_attempt(
        "similarity_curve",
        "similarity curve",
        attempts,
        attempt,
        max_attempts,
        lambda: done.append(_similarity(best_file, train_file, settings, n_reference, png, csv)),
    )
    if reason:
        record_figure_failure("similarity curve", reason, png, csv, out_json)
        return None
    write_json(out_json, {"status": "ok", "reason": ""})
    return done[0]


def _similarity(best_file, train_file, settings: dict, n_reference: int, png, csv) -> pd.DataFrame:
    best = read_yaml(best_file)
    params = best["hyperparameters"]
    frames = D.read_normalised(train_file)
    dimers = [a for a in frames if len(a) == 2]
    if len(dimers) < 2:
        raise ValueError(
            f"{train_file}: the similarity curve needs a dimer data set (2-atom structures); "
            f"found {len(dimers)} (set kernel.similarity_curve: false)"
        )
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


def refit_comparison_step(
    search_metrics, forces_metrics, search_fit, forces_fit, energy_only: bool, out_csv
) -> pd.DataFrame:
    """Test errors of the refit as searched (e.g. energies only) and of the refit on energies
    and forces, side by side (PPSO Table 5)."""
    rows = []
    for label, mfile, ffile in (
        ("as searched" + (" (energies only)" if energy_only else ""), search_metrics, search_fit),
        ("energies + forces", forces_metrics, forces_fit),
    ):
        m, f = read_json(mfile), read_json(ffile)
        rows.append(
            {
                "fit": label,
                **{k: m.get(k, math.nan) for k in ("energy_rmse_mev", "force_rmse", "energy_mae_mev", "force_mae")},
                "fit_wall_s": f["wall_s"],
                "status": m.get("status", "ok"),
                "reason": m.get("reason", ""),
            }
        )
    df = pd.DataFrame(rows)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    for r in rows:
        say(f"test set, {r['fit']}: E {r['energy_rmse_mev']:.3f} meV/atom, F {r['force_rmse']:.4f} eV/A")
    return df
