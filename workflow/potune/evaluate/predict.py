"""Predict with a fitted potential and measure its errors against reference data."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..data.read import CT, REF_E, REF_F
from ..errors import FitterError, exception_text, is_fitter_failure
from ..io import atomic_output
from .metrics import Residuals

if TYPE_CHECKING:
    import pandas as pd


def predict(calc, frames: Sequence) -> tuple[list[float], list[np.ndarray], float]:
    """Energies and forces of ``frames`` with ASE calculator ``calc``.

    Returns
    -------
    energies (eV), forces (eV/Å, one (N, 3) array per frame), seconds per atom

    Raises
    ------
    FitterError
        The calculator failed with an error of its library (see
        :func:`potune.errors.is_fitter_failure`) or predicted a non-finite value; other
        exceptions (bugs) pass through unchanged.
    """
    energies, forces = [], []
    n_atoms = 0
    t0 = time.perf_counter()
    for i, atoms in enumerate(frames):
        a = atoms.copy()
        a.calc = calc
        try:
            e = float(a.get_potential_energy())
            f = np.array(a.get_forces(), dtype=float)
        except Exception as exc:
            if is_fitter_failure(exc):  # the fitter's library cannot evaluate its model
                raise FitterError(f"structure {i}: {exception_text(exc)}") from exc
            raise
        if not (np.isfinite(e) and np.isfinite(f).all()):
            raise FitterError(f"structure {i}: non-finite prediction (energy {e})")
        energies.append(e)
        forces.append(f)
        n_atoms += len(a)
    dt = time.perf_counter() - t0
    return energies, forces, dt / max(n_atoms, 1)


#: timed passes of :func:`timing_ms_per_atom` (the median is kept: one pass on a busy machine
#: can be several times slower)
TIMING_REPEATS = 3
#: atoms of the structures timed (the first structures of the set, at least one)
TIMING_ATOMS = 256


def timing_ms_per_atom(calc, frames: Sequence, repeats: int = TIMING_REPEATS, max_atoms: int = TIMING_ATOMS) -> float:
    """Prediction time (ms per atom): the median of ``repeats`` timed passes over the first
    structures of ``frames`` holding up to ``max_atoms`` atoms (at least one structure).
    The calculator's cached results are dropped before every structure, so each is computed."""
    subset, n_atoms = [], 0
    for a in frames:
        if subset and n_atoms + len(a) > max_atoms:
            break
        subset.append(a)
        n_atoms += len(a)
    if not subset:
        return float("nan")
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for atoms in subset:
            a = atoms.copy()
            if hasattr(calc, "reset"):
                calc.reset()
            a.calc = calc
            a.get_potential_energy()
            a.get_forces()
        times.append((time.perf_counter() - t0) / n_atoms)
    return 1000.0 * float(np.median(times))


def residuals(frames: Sequence, energies: Sequence[float], forces: Sequence[np.ndarray]) -> Residuals:
    r = Residuals()
    for a, e, f in zip(frames, energies, forces):
        ref_f = a.arrays.get(REF_F)
        r.add(a.info.get(CT, "default"), len(a), e - a.info[REF_E], None if ref_f is None else f - ref_f)
    return r


def evaluate(calc, frames: Sequence, loss_kind: str = "weighted", alpha: float = 0.5) -> tuple[dict, Residuals, dict]:
    """Errors of ``calc`` on ``frames``.

    Returns
    -------
    metrics
        ``loss``, ``energy_rmse_mev``, ``force_rmse``, ``energy_mae_mev``, ``force_mae``,
        ``predict_ms_per_atom`` (:func:`timing_ms_per_atom`: a median of
        :data:`TIMING_REPEATS` timed passes), counts, and ``per_config_type`` (a dict of the same metrics).
    residuals
        The per-structure residuals.
    predictions
        Arrays for parity plots: reference/predicted energies per atom, forces, config types.
    """
    energies, forces, _ = predict(calc, frames)
    res = residuals(frames, energies, forces)
    metrics = res.summary()
    metrics["loss"] = res.loss(loss_kind, alpha)
    metrics["predict_ms_per_atom"] = timing_ms_per_atom(calc, frames)
    metrics["per_config_type"] = res.by_config_type()
    n = np.array([len(a) for a in frames], dtype=float)
    with_f = [i for i, a in enumerate(frames) if REF_F in a.arrays]
    preds = {
        "config_type": np.array([a.info.get(CT, "default") for a in frames]),
        "energy_ref_per_atom": np.array([a.info[REF_E] for a in frames]) / n,
        "energy_pred_per_atom": np.array(energies) / n,
        "force_ref": np.concatenate([frames[i].arrays[REF_F].ravel() for i in with_f]) if with_f else np.zeros(0),
        "force_pred": np.concatenate([forces[i].ravel() for i in with_f]) if with_f else np.zeros(0),
        "force_config_type": np.concatenate(
            [[frames[i].info.get(CT, "default")] * (3 * len(frames[i])) for i in with_f]
        )
        if with_f
        else np.zeros(0, dtype=str),
    }
    return metrics, res, preds


def errors_table(metrics: dict) -> pd.DataFrame:
    """Overall and per-config_type errors as a table (one row each)."""
    cols = ["n_structures", "n_atoms", "energy_rmse_mev", "energy_mae_mev", "force_rmse", "force_mae"]
    rows = [{"config_type": "all", **{c: metrics[c] for c in cols}}]
    for ct, m in metrics.get("per_config_type", {}).items():
        rows.append({"config_type": ct, **{c: m[c] for c in cols}})
    import pandas as pd  # here, not at the top: a validate job does not need pandas

    return pd.DataFrame(rows)


def save_predictions(path: str | os.PathLike, preds: dict) -> None:
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **preds)
