"""Rules ``fit``, ``descriptors`` and ``refit``: one fit under the job's limits, recorded whatever happens."""

from __future__ import annotations

import os
from pathlib import Path

from .. import data as D
from .. import faults
from ..cluster.attempts import guarded_attempt, last_attempt_reason
from ..cluster.resources import current_rss_mb, mem_limit_mb, time_limit_s
from ..cluster.runner import RunResult
from ..console import say
from ..fitters import get_fitter
from ..io import read_yaml, write_json, write_yaml


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished child processes so far: the
    fitter's programs (gap_fit), all their threads included."""
    t = os.times()
    return t.children_user + t.children_system


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
    valid_file: str | os.PathLike | None = None,
) -> dict:
    """Fit one trial on one fold. A failing fit is recorded in ``result_file``, not raised.

    The time and memory limits are enforced inside the job, a little under what the job was
    granted (:func:`potune.resources.time_limit_s`, :func:`potune.resources.mem_limit_mb`),
    so that the failure is recorded before a scheduler would kill the job.

    The result (``result_file``) records ``wall_s`` and ``cpu_s``: the CPU seconds of the
    fitter's child processes (gap_fit; for snap, whose fit runs in this process, only what
    it starts), the measure the strategies are compared by (benchmarks/strategies.py).

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
    valid_file
        The fold's validation structures, for a proposal with an ``inner`` section (the
        nested SNAP search, :mod:`potune.fitters.snap.nested`): its fit tunes the weights
        on them and ``fit.json`` gets ``inner`` (the best inner weights and loss).
    """
    prop = read_yaml(params_file)
    attempts = Path(result_file).parent / "attempts.jsonl"
    reason = last_attempt_reason(attempts, attempt, max_attempts, mem_mb, runtime_min, what="fit")
    if reason:
        result = {
            "trial_id": prop["trial_id"],
            "status": "failed",
            "reason": reason,
            "wall_s": 0.0,
            "peak_rss_mb": 0.0,
            "returncode": None,
            "attempt": attempt,
        }
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
    if prop.get("inner"):
        extra.update(inner=prop["inner"], valid_file=valid_file)
    cpu0 = _children_cpu_s()
    with guarded_attempt(attempts, attempt):
        faults.inject("fit", prop["trial_id"])
        try:
            res = fitter.fit(
                hp,
                settings,
                train_file,
                model_dir,
                log_file,
                species,
                seed=prop.get("seed", 0),
                timeout_s=timeout,
                mem_limit_mb=mem_limit,
                threads=threads,
                **extra,
            )
        except (OSError, ImportError) as exc:
            # a fitter whose program or library cannot be started: a failed trial that says so; a
            # crashed job would be retried as if killed for memory, and recorded as such
            reason = f"cannot run fitter {fitter_name}: {type(exc).__name__}: {exc}"
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "a") as fh:
                fh.write(f"# potune: {reason}\n")
            res = RunResult(None, "failed", reason, 0.0, 0.0)
    result = {
        "trial_id": prop["trial_id"],
        "status": res.status,
        "reason": res.reason,
        "wall_s": res.wall_s,
        "cpu_s": _children_cpu_s() - cpu0,
        "peak_rss_mb": res.peak_rss_mb,
        "returncode": res.returncode,
        "attempt": attempt,
        "mem_limit_mb": mem_limit,
        "time_limit_s": timeout,
        **(res.extra or {}),
    }
    length = getattr(fitter, "descriptor_length", None)
    if length is not None:
        try:
            result["descriptor_length"] = length(hp, settings, species)
        except (ValueError, KeyError, TypeError):
            result["descriptor_length"] = None
    write_json(result_file, result)
    return result


def descriptors_step(
    spec: dict,
    train_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    log_file: str | os.PathLike,
    threads: int = 1,
    mem_mb: float | None = None,
    runtime_min: float | None = None,
    attempt: int = 1,
    max_attempts: int | None = None,
    valid_file: str | os.PathLike | None = None,
    cv: dict | None = None,
) -> dict:
    """Compute one descriptor cache (snap); with ``valid_file`` (nested search) its
    validation blocks too, with ``cv`` (``snap.inner.folds`` > 1) its cross-validation blocks. A failing computation is recorded in
    ``out_dir/meta.json`` (and becomes a failed trial of every fit that uses it), not raised.

    A job killed from outside is retried; its last attempt (``attempt``, ``max_attempts``:
    as in :func:`fit_step`) records the failure without computing again. The attempts are
    noted beside the log (``<log>.attempts.jsonl``: Snakemake removes ``out_dir`` of a
    failed job)."""
    import json

    from ..fitters.snap import compute_descriptors
    from ..io import atomic_write_text

    attempts = Path(str(log_file) + ".attempts.jsonl")
    killed = last_attempt_reason(attempts, attempt, max_attempts, mem_mb, runtime_min, what="fit")
    if killed:
        meta = {"status": "failed", "reason": f"descriptors: {killed}", "spec": spec, "wall_s": 0.0, "peak_rss_mb": 0.0}
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(out_dir) / "meta.json", json.dumps(meta, indent=1))
        say(f"descriptors {Path(out_dir).name}: FAILED ({meta['reason'][:200]})")
        return meta
    timeout = time_limit_s(runtime_min) if runtime_min else None
    mem_limit = mem_limit_mb(mem_mb, current_rss_mb()) if mem_mb else None
    with guarded_attempt(attempts, attempt):
        faults.inject("descriptors")
        meta = compute_descriptors(
            spec, train_file, out_dir, log_file, timeout, mem_limit, threads, valid_file=valid_file, cv=cv
        )
    if meta["status"] == "ok":
        say(
            f"descriptors {Path(out_dir).name}: {meta['n_rows']} rows x {meta['n_columns']} columns "
            f"in {meta['descriptor_s']:.1f} s"
        )
    else:
        say(f"descriptors {Path(out_dir).name}: FAILED ({meta['reason'][:200]})")
    return meta


def refit_step(
    best_file,
    train_file,
    model_dir,
    result_file,
    log_file,
    fitter_name,
    settings,
    threads=1,
    mem_mb=None,
    runtime_min=None,
    attempt: int = 1,
    max_attempts: int | None = None,
) -> dict:
    """Refit the best hyperparameters on the whole training set.

    A failing refit (crash, over its limits, killed from outside on every attempt but the
    last) is recorded in ``result_file`` (``status: failed``, ``reason``), not raised: the
    run still ends with its table, its figures that do not need the refit, and a summary
    that says the refit failed and why."""
    doc = read_yaml(best_file)
    tmp = Path(result_file).with_name("refit_params.yaml")
    write_yaml(
        tmp,
        {
            "trial_id": f"best ({doc['trial_id']})",
            "point": doc["point"],
            "fixed": doc["fixed"],
            "seed": int(doc.get("seed", 0)),
        },
    )
    res = fit_step(
        tmp,
        train_file,
        model_dir,
        result_file,
        log_file,
        fitter_name,
        settings,
        threads,
        mem_mb,
        runtime_min,
        attempt=attempt,
        max_attempts=max_attempts,
    )
    if res["status"] != "ok":
        say(f"REFIT FAILED: the best hyperparameters could not be refitted: {res['reason'][:300]} (log: {log_file})")
    return res


def refit_failure(result_file) -> str:
    """Why the refit failed (from its ``fit.json``), or '' when it succeeded."""
    from ..io import read_json

    res = read_json(result_file)
    return "" if res.get("status") == "ok" else str(res.get("reason") or "unknown")
