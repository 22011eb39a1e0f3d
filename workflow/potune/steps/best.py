"""The best trial: its hyperparameters (checkpoint ``best_params``) and its errors on the test set (rule ``test_errors``)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from .. import data as D
from .. import faults
from ..console import say
from ..fitters import get_fitter
from ..io import read_yaml, write_json, write_yaml
from ..report.references import comparison_rows, references
from ..report.summary import failure_summary
from ..search.space import Space


def merge_predictions(files: Sequence[str | os.PathLike]) -> dict:
    """Concatenate saved prediction arrays (e.g. of the validation folds of one trial)."""
    import numpy as np

    parts = [dict(np.load(f, allow_pickle=False)) for f in files]
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def best_step(
    cfg: dict,
    table_file: str | os.PathLike,
    out_file: str | os.PathLike,
    predictions_out: str | os.PathLike | None = None,
) -> dict:
    """The best trial's hyperparameters (searched and fixed) as ``best.yaml``; its validation
    predictions (all folds) copied to ``predictions_out``.

    ``status`` is ``ok``, or ``none`` when no trial succeeded: then ``best.yaml`` holds the
    most common failure reasons instead, no potential is refitted, and the run ends with a
    summary that says so (see :func:`summary_step`).
    """
    from ..evaluate.predict import save_predictions
    from ..search.loop import best_trial
    from ..trials import read_table

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
        say(
            f"NO TRIAL SUCCEEDED: all {len(table)} trial(s) failed; no potential will be fitted. "
            f"Most common reason: {doc['failures'][0]['reason'][:300] if doc['failures'] else 'none recorded'}"
        )
        return doc
    space = Space.from_config(cfg["space"])
    point = space.to_dict([best[n] for n in space.names])
    fixed = cfg.get("fixed") or {}
    seed = 0
    pf = best.get("params_file")
    if isinstance(pf, str) and Path(pf).is_file():  # what the trial was fitted with (two_stage: + stage 1's SOAP)
        prop = read_yaml(pf)
        fixed = prop.get("fixed") or fixed
        seed = int(prop.get("seed", 0))
    doc = {
        "status": "ok",
        "trial_id": best["trial_id"],
        "iteration": int(best["iteration"]),
        "loss": float(best["loss"]),
        "energy_rmse_mev": float(best["energy_rmse_mev"]),
        "force_rmse": float(best["force_rmse"]),
        **cv_fields(best),
        "fitter": cfg["fitter"],
        "hyperparameters": {**fixed, **point},
        "point": point,
        "fixed": fixed,
        "settings": cfg.get(cfg["fitter"], {}),
        "seed": seed,  # the winning trial's: the refit draws its sparse points as the trial did
    }
    bounds = space.on_bounds(point)
    if bounds:
        doc["on_bounds"] = bounds  # the optimum may lie outside the space
    write_yaml(out_file, doc)
    if predictions_out:
        folds = [Path(f).parent / "valid_predictions.npz" for f in str(best["fit_logs"]).split(";")]
        save_predictions(predictions_out, merge_predictions(folds))
    say(
        f"best trial {best['trial_id']}: loss {float(best['loss']):.5g}; refitting on the whole training set"
        + (f"; ON A BOUND of the search space: {', '.join(bounds)}" if bounds else "")
    )
    return doc


def record_outcome(best_file, refit: dict | None, test: dict | None) -> dict:
    """Add what became of the refit and its test (``refit``/``test``: ``{status, reason}``;
    ``test`` ``status: none`` without a test set) to ``best.yaml``, keeping the file's
    modification time: the refit depends on ``best.yaml``, and a newer file would make
    Snakemake refit again on the next run."""
    path = Path(best_file)
    doc = read_yaml(path)
    new = dict(doc)
    for key, res in (("refit", refit), ("test", test)):
        if res is not None:
            new[key] = {"status": str(res.get("status", "ok")), "reason": str(res.get("reason") or "")}
    if new != doc:
        st = path.stat()
        write_yaml(path, new)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return new


def best_succeeded(best_file: str | os.PathLike) -> bool:
    """Whether ``best.yaml`` names a successful trial (files written before ``status``
    existed always did)."""
    return read_yaml(best_file).get("status", "ok") == "ok"


def test_step(
    cfg: dict,
    model_dir,
    test_file,
    out_csv,
    out_predictions,
    out_json,
    attempt: int = 1,
    max_attempts: int | None = None,
) -> dict:
    """Errors of the refitted best potential on the held-out test set.

    ``out_json`` holds ``status``: ``ok``, or ``failed`` with ``reason`` (then ``out_csv``
    has no rows and ``out_predictions`` no arrays) when the refit failed, the model cannot
    predict (:class:`potune.errors.FitterError`) or this job was killed from outside on
    every attempt but the last (which records it without predicting again). Other
    exceptions are errors of potune and are raised."""
    import pandas as pd

    from ..cluster.attempts import guarded_attempt, last_attempt_reason
    from ..errors import FitterError, exception_text, is_fitter_failure
    from ..evaluate.predict import evaluate, save_predictions
    from .fit import refit_failure

    fit_json = Path(model_dir).parent / "fit.json"
    attempts = Path(out_json).parent / (Path(out_json).stem + "_attempts.jsonl")
    killed = last_attempt_reason(attempts, attempt, max_attempts, None, None, what="validate")
    reason = ""
    if fit_json.exists() and refit_failure(fit_json):
        reason = f"no test errors: the refit failed: {refit_failure(fit_json)}"
    elif killed:
        reason = f"test errors {killed}"
    else:
        with guarded_attempt(attempts, attempt):
            faults.inject("test_errors")
            try:
                try:
                    calc = get_fitter(cfg["fitter"]).calculator(model_dir)
                except Exception as exc:
                    if not is_fitter_failure(exc):
                        raise
                    raise FitterError(f"the model cannot be loaded: {exception_text(exc)}") from exc
                frames = D.read_normalised(test_file)
                metrics, _, preds = evaluate(calc, frames, cfg["loss"]["kind"], cfg["loss"]["alpha"])
            except (FitterError, MemoryError) as exc:
                reason = (
                    f"prediction on the test set failed: {exc if isinstance(exc, FitterError) else exception_text(exc)}"
                )
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    if reason:
        pd.DataFrame(columns=["config_type", "energy_rmse_mev", "force_rmse"]).to_csv(out_csv, index=False)
        save_predictions(out_predictions, {})
        metrics = {"status": "failed", "reason": reason}
        write_json(out_json, metrics)
        say(f"TEST SET NOT EVALUATED: {reason[:300]}")
        return metrics
    df = errors_with_references(metrics, cfg.get("reference"))
    df.to_csv(out_csv, index=False)
    save_predictions(out_predictions, preds)
    metrics = {"status": "ok", **metrics}
    write_json(out_json, metrics)
    txt = f"test set: E {metrics['energy_rmse_mev']:.2f} meV/atom, F {metrics['force_rmse']:.4f} eV/A"
    for ref in references(cfg.get("reference")):
        parts = [
            f"{ref[k]:g} {u}"
            for k, u in (("energy_rmse_mev", "meV/atom"), ("force_rmse", "eV/A"))
            if ref[k] is not None
        ]
        txt += f"; {ref['label']}: {', '.join(parts)}"
    say(txt)
    return metrics


def errors_with_references(metrics: dict, reference=None):
    """``best/test_errors.csv``: our errors overall and per config_type (``source`` potune),
    then one row per published reference (``source`` reference, config_type ``all``, its
    ``label`` and ``note``) with ``energy_ratio`` and ``force_ratio`` = ours / reference.

    Parameters
    ----------
    metrics
        Our test-set metrics (:func:`potune.evaluate.predict.evaluate`).
    reference
        The config's ``reference`` (one mapping or a list; see :mod:`potune.report.references`).
    """
    import pandas as pd

    from ..evaluate.predict import errors_table

    ours = errors_table(metrics)
    ours.insert(0, "source", "potune")
    ours.insert(1, "label", "potune")
    refs = pd.DataFrame(comparison_rows(metrics, reference))
    if len(refs):
        refs.insert(0, "source", "reference")
        refs["config_type"] = "all"
    return pd.concat([ours, refs], ignore_index=True) if len(refs) else ours


def cv_fields(best) -> dict:
    """For a trial ranked by its inner CV loss (``snap.outer_loss: cv``): ``valid_loss`` (the
    validation fold's loss) and the CV errors (``cv_energy_rmse_mev``, ``cv_force_rmse``);
    otherwise nothing. ``energy_rmse_mev`` and ``force_rmse`` stay the validation fold's."""
    v = best.get("valid_loss")
    if v is None or math.isnan(float(v)):
        return {}
    return {
        "valid_loss": float(v),
        "cv_energy_rmse_mev": float(best["inner_energy_rmse_mev"]),
        "cv_force_rmse": float(best["inner_force_rmse"]),
    }
