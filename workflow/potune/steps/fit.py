"""Rules ``fit``, ``descriptors`` and ``refit``: one fit under the job's limits, recorded whatever happens."""

from __future__ import annotations

import os
from pathlib import Path

from .. import data as D
from ..cluster.attempts import killed_reason, record_attempt
from ..cluster.resources import current_rss_mb, mem_limit_mb, time_limit_s
from ..console import say
from ..fitters import get_fitter
from ..io import read_yaml, write_json, write_yaml


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
    history = record_attempt(Path(result_file).parent / "attempts.jsonl", attempt, mem_mb, runtime_min)
    if max_attempts and max_attempts > 1 and attempt >= max_attempts:
        reason = killed_reason(history, attempt)
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
    result = {
        "trial_id": prop["trial_id"],
        "status": res.status,
        "reason": res.reason,
        "wall_s": res.wall_s,
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
    valid_file: str | os.PathLike | None = None,
) -> dict:
    """Compute one descriptor cache (snap); with ``valid_file`` (nested search) its
    validation blocks too. A failing computation is recorded in
    ``out_dir/meta.json`` (and becomes a failed trial of every fit that uses it), not raised."""
    from ..fitters.snap import compute_descriptors

    timeout = time_limit_s(runtime_min) if runtime_min else None
    mem_limit = mem_limit_mb(mem_mb, current_rss_mb()) if mem_mb else None
    meta = compute_descriptors(spec, train_file, out_dir, log_file, timeout, mem_limit, threads, valid_file=valid_file)
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
) -> dict:
    """Refit the best hyperparameters on the whole training set. Raises if the refit fails."""
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
        tmp, train_file, model_dir, result_file, log_file, fitter_name, settings, threads, mem_mb, runtime_min
    )
    if res["status"] != "ok":
        raise RuntimeError(f"refit of the best hyperparameters failed: {res['reason']} (log: {log_file})")
    return res
