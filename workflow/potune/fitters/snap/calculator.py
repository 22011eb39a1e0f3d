"""Predictions of a fitted SNAP model: LAMMPS ``pair_style snap`` through ASE, and the
linear model itself (FitSNAP descriptors times the coefficients) for cross-checks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .descriptors import descriptor_rows
from .export import MODEL_PREFIX, lammps_commands, read_model


def calculator(model_dir: str | os.PathLike):
    """An ASE calculator of a fitted SNAP model: LAMMPS ``pair_style snap`` with the
    exported ``.snapcoeff``/``.snapparam`` (through ``ase.calculators.lammpslib``)."""
    from ase.calculators.lammpslib import LAMMPSlib

    model = read_model(model_dir)
    symbols = model["symbols"]
    for ext in ("snapcoeff", "snapparam"):
        f = Path(model_dir) / f"{MODEL_PREFIX}.{ext}"
        if not f.exists():
            raise FileNotFoundError(f"{f}: missing")
    return LAMMPSlib(
        lmpcmds=lammps_commands(model_dir, symbols),
        atom_types={s: i + 1 for i, s in enumerate(symbols)},
        keep_alive=True,
        log_file=None,
    )


def linear_predict(model_dir: str | os.PathLike, frames: Sequence) -> tuple[list[float], list[np.ndarray]]:
    """Energies and forces of ``frames`` from the linear model itself: FitSNAP descriptors
    times the fitted coefficients (the path the fit uses; for cross-checks with LAMMPS)."""
    model = read_model(model_dir)
    coef = np.array(model["coefficients"])
    energies, forces = [], []
    for atoms in frames:
        rows = descriptor_rows(model["spec"], model["symbols"], [atoms], require_reference=False)
        pred = rows["A"] @ coef
        n = len(atoms)
        energies.append(float(pred[0]) * n)
        forces.append(pred[1 : 1 + 3 * n].reshape(n, 3) @ rows["rotations"][0].T)
    return energies, forces
