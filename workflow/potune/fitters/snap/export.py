"""A fitted SNAP model on disk: LAMMPS's ``.snapcoeff``/``.snapparam``, an include file and
``model.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...io import atomic_write_text
from .params import element_values

MODEL_PREFIX = "snap"


def _fmt(v: float) -> str:
    return repr(float(v))


def snapparam_text(spec: dict) -> str:
    """The ``.snapparam`` file of a model with descriptor specification ``spec``."""
    return "\n".join(
        [
            "# SNAP parameters written by potune",
            f"rcutfac {_fmt(spec['rcutfac'])}",
            f"twojmax {int(spec['twojmax'])}",
            f"rfac0 {_fmt(spec['rfac0'])}",
            f"rmin0 {_fmt(spec['rmin0'])}",
            f"bzeroflag {int(spec['bzeroflag'])}",
            f"switchflag {int(spec['switchflag'])}",
            f"quadraticflag {int(spec['quadratic'])}",
            *(["chemflag 1"] if spec.get("chemflag") else []),
            "",
        ]
    )


def snapcoeff_text(spec: dict, symbols: Sequence[str], coef: np.ndarray) -> str:
    """The ``.snapcoeff`` file: per element its radius, weight and ``1 + ncoeff`` coefficients."""
    per = coef.reshape(len(symbols), -1)
    rad = element_values(spec, "radelem", symbols)
    wj = element_values(spec, "wj", symbols)
    lines = ["# SNAP coefficients written by potune", "", f"{len(symbols)} {per.shape[1]}"]
    for s, r, w, c in zip(symbols, rad, wj, per):
        lines.append(f"{s} {_fmt(r)} {_fmt(w)}")
        lines += [f"{v:.17g}" for v in c]
    return "\n".join(lines) + "\n"


def lammps_commands(model_dir: str | os.PathLike, symbols: Sequence[str], relative: bool = False) -> list[str]:
    """``pair_style``/``pair_coeff`` lines for the model in ``model_dir``."""
    d = Path(model_dir)
    base = "" if relative else f"{d.resolve()}/"
    return [
        "pair_style snap",
        f"pair_coeff * * {base}{MODEL_PREFIX}.snapcoeff {base}{MODEL_PREFIX}.snapparam {' '.join(symbols)}",
    ]


def write_model(model_dir: str | os.PathLike, spec: dict, symbols: Sequence[str], coef: np.ndarray, info: dict) -> None:
    """``snap.snapcoeff``, ``snap.snapparam``, ``snap.mod`` (LAMMPS include) and ``model.json``."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / f"{MODEL_PREFIX}.snapcoeff", snapcoeff_text(spec, symbols, coef))
    atomic_write_text(d / f"{MODEL_PREFIX}.snapparam", snapparam_text(spec))
    mod = [
        "# LAMMPS include file for this SNAP potential (units metal, atom types in this order: "
        + " ".join(symbols)
        + ")",
        "# usage: include snap.mod  (run from this folder or edit the paths)",
    ]
    atomic_write_text(d / f"{MODEL_PREFIX}.mod", "\n".join(mod + lammps_commands(d, symbols, relative=True)) + "\n")
    doc = {"fitter": "snap", "symbols": list(symbols), "spec": spec, "coefficients": [float(c) for c in coef], **info}
    atomic_write_text(d / "model.json", json.dumps(doc, indent=1))  # last: its presence means a whole model


def read_model(model_dir: str | os.PathLike) -> dict:
    f = Path(model_dir) / "model.json"
    if not f.exists():
        raise FileNotFoundError(f"{f}: no SNAP model")
    return json.loads(f.read_text())
