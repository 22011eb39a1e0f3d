"""Checks of reference data that run before any job: elements missing from the training
data, energies that look per-atom, and every data file a configuration names.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .read import REF_E, read_structures, species
from .split import kfold_split, random_split


def check_species(train: Sequence, other: Sequence, other_name: str) -> None:
    """Raise when ``other`` holds an element the training data lacks."""
    from ase.data import chemical_symbols

    missing = sorted(set(species(other)) - set(species(train)))
    if missing:
        names = ", ".join(chemical_symbols[z] for z in missing)
        raise DataError(f"{other_name}: contains element(s) {names} absent from the training data")


def energy_scale_warning(frames: Sequence, name: str) -> str | None:
    """Return a warning when energies look per-atom rather than total (or vice versa).

    Total energies of structures of one element grow with the number of atoms; if the
    structures differ in size by 2x or more but their energies do not scale with it, the
    file probably stores energies per atom.
    """
    sizes = np.array([len(a) for a in frames], dtype=float)
    energies = np.array([a.info[REF_E] for a in frames], dtype=float)
    if len(frames) < 3 or sizes.max() < 2 * sizes.min():
        return None
    per_atom = energies / sizes
    spread_total = np.std(energies) / (abs(np.mean(energies)) + 1e-12)
    spread_per_atom = np.std(per_atom) / (abs(np.mean(per_atom)) + 1e-12)
    if spread_per_atom > 5 * spread_total and spread_per_atom > 0.2:
        return (
            f"{name}: energies do not grow with the number of atoms; they look like energies "
            "per atom, but potune expects total energies (eV)"
        )
    return None


def check_dataset(frames: Sequence, name: str) -> None:
    """Emit warnings about suspicious (but usable) data."""
    msg = energy_scale_warning(frames, name)
    if msg:
        warnings.warn(msg, stacklevel=2)


def check_split(train: Sequence, scfg: dict, name: str) -> None:
    """The split the ``split`` job will make is possible (k folds need k structures to
    validate on; a random split needs one): refused now, not inside the job."""
    try:
        if scfg["method"] == "kfold":
            kfold_split(train, scfg["k"], scfg["seed"], scfg["always_train"])
        elif scfg["method"] == "random":
            random_split(train, scfg["fraction"], scfg["seed"], scfg["always_train"])
    except (DataError, ValueError) as exc:
        key = "split.k" if scfg["method"] == "kfold" else "split.fraction"
        raise DataError(
            f"{name}: {key}: {exc} (config_types in split.always_train and isolated atoms are never validated on)"
        ) from None


def check_inputs(cfg: dict) -> dict:
    """Read every data file the configuration names and stop with a :class:`DataError`
    naming the file, frame and key if one is unusable. Run before any job starts."""
    dcfg = cfg["data"]
    keys = dict(energy_key=dcfg["energy_key"], forces_key=dcfg["forces_key"], config_type_key=dcfg["config_type_key"])
    need_f = not cfg.get(cfg["fitter"], {}).get("energy_only", False) or bool(cfg.get("refit_forces"))
    train = read_structures(dcfg["train"], require_forces=need_f, **keys)
    check_dataset(train, dcfg["train"])
    check_split(train, cfg["split"], dcfg["train"])
    counts = {"train": len(train)}
    for key in ("validation", "test"):
        if dcfg.get(key):
            frames = read_structures(dcfg[key], require_forces=False, **keys)
            check_species(train, frames, dcfg[key])
            counts[key] = len(frames)
    return counts
