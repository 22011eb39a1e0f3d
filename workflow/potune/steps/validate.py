"""Rule ``validate``: errors of one fitted trial on its validation fold."""

from __future__ import annotations

import math
import os

from .. import data as D
from ..console import say
from ..fitters import get_fitter
from ..io import read_json, write_json


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
    from ..evaluate.predict import evaluate, save_predictions

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
            say(
                f"trial {fit['trial_id']}: loss {metrics['loss']:.5g}  E {metrics['energy_rmse_mev']:.2f} meV/atom  "
                f"F {metrics['force_rmse']:.4f} eV/A  (fit {fit['wall_s']:.0f} s)"
            )
        except Exception as exc:  # a model that cannot predict is a failed trial, not a crash
            out = {"status": "failed", "reason": f"prediction failed: {type(exc).__name__}: {exc}"}
            say(f"trial {fit['trial_id']}: FAILED ({out['reason'][:200]})")
            preds = None
    if predictions_file:
        save_predictions(predictions_file, preds if preds is not None else {})
    write_json(out_file, out)
    return out
