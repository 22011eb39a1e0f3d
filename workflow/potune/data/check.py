"""Checks of reference data that run before any job: elements missing from the training
data (of the whole run and of each fold), isolated atoms that ``gap.e0_method: isolated``
needs, energies that look per-atom, and every data file a configuration names.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from . import e0 as E0
from .read import REF_E, read_structures, species
from .split import split_folds


def _symbols(zs) -> str:
    from ase.data import chemical_symbols

    return ", ".join(chemical_symbols[z] for z in zs)


def _frames_with(frames: Sequence, zs, n: int = 5) -> str:
    """``frames 3, 7 (0-based)`` of the first ``n`` structures holding one of ``zs``."""
    idx = [int(a.info.get("source_index", i)) for i, a in enumerate(frames) if set(int(z) for z in a.numbers) & set(zs)]
    more = f" and {len(idx) - n} more" if len(idx) > n else ""
    return f"frame{'s' if len(idx) > 1 else ''} {', '.join(map(str, idx[:n]))}{more} (0-based)"


def check_species(train: Sequence, other: Sequence, other_name: str, train_name: str = "the training data") -> None:
    """Raise when ``other`` holds an element ``train`` lacks, naming the element and the
    frames of ``other`` that hold it."""
    missing = sorted(set(species(other)) - set(species(train)))
    if missing:
        raise DataError(
            f"{other_name}: contains element(s) {_symbols(missing)} ({_frames_with(other, missing)}) "
            f"absent from {train_name}: a potential cannot predict an element it was not trained on"
        )


def check_isolated_atoms(frames: Sequence, name: str) -> None:
    """For ``gap.e0_method: isolated``: every species needs one isolated atom (a one-atom
    structure, :func:`potune.data.e0.is_isolated`), and only one (gap_fit stops on two)."""
    recs = E0.records(frames)
    iso = [r.numbers[0] for r in recs if r.isolated]
    missing = sorted(set(species(frames)) - set(iso))
    if missing:
        raise DataError(
            f"{name}: gap.e0_method isolated needs an isolated atom (a one-atom structure) of every species; "
            f"none of {_symbols(missing)}. Add one, or use e0_method least_squares or auto"
        )
    twice = sorted({z for z in iso if iso.count(z) > 1})
    if twice:
        raise DataError(
            f"{name}: more than one isolated atom of {_symbols(twice)}; gap_fit's e0_method isolated stops on "
            "that (ambiguous e0): keep one"
        )


def e0_warning(frames: Sequence, method: str, name: str) -> str | None:
    """Why the e0 of ``method`` cannot be used on these structures and what potune uses
    instead (:func:`potune.data.e0.choose_e0`), or None."""
    if method in ("average", "isolated"):
        return None
    note = E0.choose_e0(E0.records(frames), method).note
    return f"{name}: gap.e0_method {method}: {note}" if note else None


def energy_scale_warning(frames: Sequence, name: str) -> str | None:
    """Return a warning when energies look per-atom rather than total (or vice versa).

    Total energies grow with the number of atoms: ``E ~ sum_s n_s e_s`` (``n_s`` atoms of
    species ``s``). If the structures differ in size by 2x or more but their energies fit
    ``E ~ sum_s x_s e_s`` (``x_s`` the fractions: size-independent) much better, the file
    probably stores energies per atom. Both are least-squares fits over the species, so a
    composition that varies is not mistaken for energies that do not scale (with one
    species this is the spread of E/N against the spread of E).
    """
    sizes = np.array([len(a) for a in frames], dtype=float)
    energies = np.array([a.info[REF_E] for a in frames], dtype=float)
    if len(frames) < 3 or sizes.max() < 2 * sizes.min():
        return None
    x = E0.fractions(E0.records(frames), species(frames))
    per_atom = energies / sizes
    # totals: E/N = x.e (residuals per atom); per atom: E = x.e (residuals of E)
    res_total = per_atom - x @ np.linalg.lstsq(x, per_atom, rcond=None)[0]
    res_per_atom = energies - x @ np.linalg.lstsq(x, energies, rcond=None)[0]
    spread_per_atom = np.sqrt(np.mean(res_total**2)) / (abs(np.mean(per_atom)) + 1e-12)
    spread_total = np.sqrt(np.mean(res_per_atom**2)) / (abs(np.mean(energies)) + 1e-12)
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
    validate on; a random split needs one), and no fold validates on an element its training
    set lacks (an element found in a few structures only can land in validation only):
    refused now, not inside the job, naming the fold, the element and the frames of ``name``."""
    try:
        folds = split_folds(train, scfg)
    except (DataError, ValueError) as exc:
        key = "split.k" if scfg["method"] == "kfold" else "split.fraction"
        raise DataError(
            f"{name}: {key}: {exc} (config_types in split.always_train and isolated atoms are never validated on)"
        ) from None
    for f, (tr, va) in enumerate(folds):
        fold_train, valid = [train[i] for i in tr], [train[i] for i in va]
        missing = sorted(set(species(valid)) - set(species(fold_train)))
        if missing:
            how = f"split.method {scfg['method']}, seed {scfg['seed']}"
            raise DataError(
                f"{name}: the validation set of fold {f} ({how}) holds element(s) {_symbols(missing)} "
                f"({_frames_with(valid, missing)}) that its training set lacks; every trial would fail on them. "
                "Add structures with them, put their config_type into split.always_train, or change split.seed"
            )


def check_inner_folds(train: Sequence, cfg: dict) -> None:
    """With ``snap.inner.folds`` k > 1 (nested SNAP search), every fold's training structures
    can be dealt into k cross-validation folds (:func:`potune.fitters.snap.descriptors.cv_folds`):
    a :class:`~potune.errors.ConfigError` naming ``snap.inner.folds`` now, not in a descriptor job."""
    if cfg.get("fitter") != "snap":
        return
    from ..fitters.snap.descriptors import cv_folds
    from ..fitters.snap.nested import cv_spec

    cv = cv_spec(cfg)
    if not cv:
        return
    folds = split_folds(train, cfg["split"]) or [(list(range(len(train))), [])]  # method file: all of train
    for tr, _ in folds:
        cv_folds([train[i] for i in tr], cv)


def check_inputs(cfg: dict) -> dict:
    """Read every data file the configuration names and stop with a :class:`DataError`
    naming the file, frame and key if one is unusable. Run before any job starts."""
    dcfg = cfg["data"]
    keys = dict(energy_key=dcfg["energy_key"], forces_key=dcfg["forces_key"], config_type_key=dcfg["config_type_key"])
    need_f = not cfg.get(cfg["fitter"], {}).get("energy_only", False) or bool(cfg.get("refit_forces"))
    train = read_structures(dcfg["train"], require_forces=need_f, **keys)
    check_dataset(train, dcfg["train"])
    check_split(train, cfg["split"], dcfg["train"])
    check_inner_folds(train, cfg)
    e0_given = (cfg.get("fixed") or {}).get("e0") is not None or "e0" in (cfg.get("space") or {})
    if cfg["fitter"] == "gap" and not e0_given:
        method = cfg["gap"].get("e0_method", "auto")
        if method == "isolated":
            check_isolated_atoms(train, dcfg["train"])
        msg = e0_warning(train, method, dcfg["train"])
        if msg:
            warnings.warn(msg, stacklevel=1)  # not 2: a warning attributed to the Snakefile is lost
    counts = {"train": len(train)}
    for key in ("validation", "test"):
        if dcfg.get(key):
            frames = read_structures(dcfg[key], require_forces=False, **keys)
            check_species(train, frames, dcfg[key], f"the training data ({dcfg['train']})")
            counts[key] = len(frames)
    return counts
