"""Rule ``validate``: errors of one fitted trial on its validation fold."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .. import data as D
from .. import faults
from ..cluster.attempts import guarded_attempt, last_attempt_reason
from ..cluster.resources import mem_limit_mb, memory_guard
from ..console import say
from ..errors import FitterError, exception_text, is_fitter_failure
from ..fitters import get_fitter
from ..io import read_json, write_json

#: beside fit.json: this job's attempts (see :mod:`potune.cluster.attempts`)
ATTEMPTS = "validate_attempts.jsonl"


def validate_step(
    fit_file: str | os.PathLike,
    model_dir: str | os.PathLike,
    valid_file: str | os.PathLike,
    out_file: str | os.PathLike,
    fitter_name: str,
    loss_cfg: dict,
    predictions_file: str | os.PathLike | None = None,
    attempt: int = 1,
    max_attempts: int | None = None,
    fold_label: str = "",
    mem_mb: float | None = None,
    runtime_min: float | None = None,
) -> dict:
    """Errors of one fitted trial on its validation structures (or the fit's failure).

    The predictions (for parity plots) go to ``predictions_file`` (empty arrays if the trial
    failed).

    What is recorded as a failed trial (``status: failed``, ``reason``; ``exception`` holds
    ``Type: message`` of a Python exception): the fit's failure; the fitter's failures to
    predict (:class:`potune.errors.FitterError`: its library raised, the model cannot be
    loaded, a non-finite prediction); this job killed from outside on every attempt but the
    last (``attempt``, ``max_attempts``: as in :func:`potune.steps.fit.fit_step`), which
    records that without predicting again. Any other exception is an error of potune: it is
    raised (the run stops with its traceback) and a later attempt raises it again.
    """
    from ..evaluate.predict import evaluate, save_predictions

    fit = read_json(fit_file)
    label = f"trial {fit['trial_id']}" + (f" {fold_label}" if fold_label else "")
    attempts = Path(out_file).parent / ATTEMPTS
    killed = last_attempt_reason(attempts, attempt, max_attempts, mem_mb, runtime_min, what="validate")
    preds = None
    if fit["status"] != "ok":
        out = {"status": "failed", "reason": fit["reason"]}
    elif killed:
        out = {"status": "failed", "reason": f"validation {killed}"}
    else:
        limit = mem_limit_mb(mem_mb) if mem_mb else None

        def over_memory(rss: float) -> None:  # from the memory guard's thread; the process then ends
            reason = (
                f"out of memory: the validation used {rss:.0f} MB, more than the limit of {limit:.0f} MB "
                "(raise resources.validate.mem_mb)"
            )
            if predictions_file:
                save_predictions(predictions_file, {})
            write_json(out_file, {"status": "failed", "reason": reason})
            say(f"{label}: FAILED ({reason})")

        with guarded_attempt(attempts, attempt):
            try:
                with memory_guard(limit, over_memory):
                    faults.inject("validate", fit["trial_id"])
                    try:
                        calc = get_fitter(fitter_name).calculator(model_dir)
                    except Exception as exc:
                        if not is_fitter_failure(exc):
                            raise
                        raise FitterError(f"the model cannot be loaded: {exception_text(exc)}") from exc
                    frames = D.read_normalised(valid_file)
                    metrics, _, preds = evaluate(calc, frames, loss_cfg["kind"], loss_cfg["alpha"])
                if not math.isfinite(metrics["loss"]):
                    raise FitterError(f"non-finite loss {metrics['loss']}")
                out = {"status": "ok", "reason": "", **metrics}
            except FitterError as exc:  # the fitter's failure: a failed trial
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                out = {"status": "failed", "reason": f"prediction failed: {exc}", "exception": exception_text(cause)}
                preds = None
            except MemoryError as exc:
                text = str(exc) if str(exc).startswith("out of memory") else f"out of memory: {exception_text(exc)}"
                out = {"status": "failed", "reason": f"{text} (raise resources.validate.mem_mb)"}
                preds = None
    if out["status"] == "ok":
        say(
            f"{label}: loss {out['loss']:.5g}  E {out['energy_rmse_mev']:.2f} meV/atom  "
            f"F {out['force_rmse']:.4f} eV/A  (fit {fit['wall_s']:.0f} s)"
        )
    else:
        say(f"{label}: FAILED ({out['reason'][:200]})")
    if predictions_file:
        save_predictions(predictions_file, preds if preds is not None else {})
    write_json(out_file, out)
    return out
