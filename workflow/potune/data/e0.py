"""Per-species reference energies e0 (the energy of an atom that a potential learns relative to).

A GAP learns ``E - sum_atoms e0(species)``. One e0 for every species (gap_fit's ``average``:
the mean energy per atom) is right for one element but wrong whenever composition varies
(issue #17: on a Ti-Al set both species got -851.9 eV). potune offers
(``gap.e0_method``):

* ``isolated``: the energy of each species' isolated atom (a one-atom structure);
* ``least_squares``: ``E/N ~ sum_s x_s e0_s`` over the training structures other than
  isolated atoms (``x_s`` the fraction of species ``s``; every structure counts once, whatever
  its size);
* ``average``: one e0, the mean energy per atom, for every species (gap_fit's own);
* ``auto`` (the default): ``average`` for one species (unchanged), else ``isolated`` where
  every species has an isolated atom, else ``least_squares``.

A least-squares e0 needs compositions that vary: when every structure has nearly the same
composition (InP: every structure close to 1:1) only the sum of the e0s is determined and the
split between species follows noise. Then (condition number of the composition-fraction
matrix above :data:`COND_MAX`, or rank deficiency) potune falls back to the isolated atoms
if every species has one, else to one common e0 per atom (``average``), and says why.

Works on :class:`Composition` records, made from ase structures (:func:`records`) or read
from a normalised training file without ase (:func:`records_of_file`, for fit jobs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

E0_METHODS = ("auto", "average", "isolated", "least_squares")

#: condition number of the composition-fraction matrix above which a least-squares e0 is
#: not used (InP_small: 114, compositions 0.484-0.516 In; the EMT Cu-Au test set: ~5)
COND_MAX = 30.0

#: a one-atom structure counts as an isolated atom unless a periodic image is closer (Å)
ISOLATED_MIN_IMAGE = 5.0


@dataclass(frozen=True)
class Composition:
    """One structure as e0 sees it: atomic numbers, total energy (eV), isolated atom or not."""

    numbers: tuple[int, ...]
    energy: float
    isolated: bool = False


@dataclass
class E0Choice:
    """What e0 a fit uses: ``method`` (average, isolated or least_squares), ``values``
    (eV per species Z; for ``average`` the common value, for information), ``cond`` (the
    composition matrix's condition number, where computed) and ``note`` (why the method
    differs from the one asked for, or None)."""

    method: str
    values: dict[int, float] = field(default_factory=dict)
    cond: float | None = None
    note: str | None = None


def is_isolated(n_atoms: int, cell, pbc) -> bool:
    """A one-atom structure without a periodic image closer than :data:`ISOLATED_MIN_IMAGE`."""
    if n_atoms != 1:
        return False
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    lengths = [np.linalg.norm(v) for v, p in zip(cell, pbc) if p and np.linalg.norm(v) > 0]
    return not lengths or min(lengths) >= ISOLATED_MIN_IMAGE


def records(frames: Sequence, energy_key: str = "REF_energy") -> list[Composition]:
    """:class:`Composition` of normalised ase structures."""
    return [
        Composition(tuple(int(z) for z in a.numbers), float(a.info[energy_key]), is_isolated(len(a), a.cell, a.pbc))
        for a in frames
    ]


def records_of_file(path: str | os.PathLike) -> list[Composition]:
    """:class:`Composition` of a normalised extxyz file (``REF_energy``), read as text (a fit
    job need not import ase.io); frames without an energy are left out."""
    from ase.data import atomic_numbers

    from .read import REF_E, frames_as_text, split_comment

    out = []
    for comment, symbols in frames_as_text(path):
        keys = dict(split_comment(comment))
        if keys.get(REF_E) is None:
            continue
        lattice = keys.get("Lattice")
        cell = [float(x) for x in lattice.split()] if lattice else [0.0] * 9
        pbc = [t == "T" for t in keys["pbc"].split()] if keys.get("pbc") else [lattice is not None] * 3
        numbers = tuple(atomic_numbers[s] for s in symbols)
        out.append(Composition(numbers, float(keys[REF_E]), is_isolated(len(numbers), cell, pbc)))
    return out


def species_of(recs: Sequence[Composition]) -> list[int]:
    return sorted({z for r in recs for z in r.numbers})


def fractions(recs: Sequence[Composition], species_z: Sequence[int]) -> np.ndarray:
    """Composition fractions, one row per structure, one column per species."""
    idx = {z: j for j, z in enumerate(species_z)}
    x = np.zeros((len(recs), len(species_z)))
    for i, r in enumerate(recs):
        for z in r.numbers:
            x[i, idx[z]] += 1.0
        x[i] /= len(r.numbers)
    return x


def average_e0(recs: Sequence[Composition]) -> float:
    """gap_fit's ``e0_method=average``: the mean over structures of the energy per atom."""
    return float(np.mean([r.energy / len(r.numbers) for r in recs]))


def isolated_e0(recs: Sequence[Composition]) -> dict[int, float]:
    """e0 of every species with an isolated atom: its energy (the mean if there are several)."""
    by_z: dict[int, list[float]] = {}
    for r in recs:
        if r.isolated:
            by_z.setdefault(r.numbers[0], []).append(r.energy)
    return {z: float(np.mean(v)) for z, v in sorted(by_z.items())}


def least_squares_e0(recs: Sequence[Composition], species_z: Sequence[int]) -> tuple[dict[int, float], float]:
    """Per-species e0 minimising ``sum_structures (E/N - sum_s x_s e0_s)^2`` over the
    structures that are not isolated atoms, and the condition number of their fraction matrix
    (inf when it is rank deficient). Isolated atoms are left out: two of them would make
    near-1:1 data look well conditioned while deciding the split between species alone."""
    recs = [r for r in recs if not r.isolated] or list(recs)
    x = fractions(recs, species_z)
    y = np.array([r.energy / len(r.numbers) for r in recs])
    s = np.linalg.svd(x, compute_uv=False)
    cond = float(s[0] / s[-1]) if len(s) == len(species_z) and s[-1] > 1e-12 * s[0] else float("inf")
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return {int(z): float(c) for z, c in zip(species_z, coef)}, cond


def _names(zs) -> str:
    from ase.data import chemical_symbols

    return ", ".join(chemical_symbols[z] for z in zs)


def choose_e0(recs: Sequence[Composition], method: str = "auto", species_z: Sequence[int] | None = None) -> E0Choice:
    """The e0 a fit on these structures uses under ``gap.e0_method`` ``method``.

    Raises ValueError for ``isolated`` when a species has no isolated atom (the parse-time
    check, :func:`potune.data.check.check_inputs`, says so before any job).
    """
    if method not in E0_METHODS:
        raise ValueError(f"e0_method: {method!r} is not one of {', '.join(E0_METHODS)}")
    zs = list(species_z) if species_z is not None else species_of(recs)
    iso = isolated_e0(recs)
    have_iso = all(z in iso for z in zs)
    if method == "average" or (method == "auto" and len(zs) == 1):
        v = average_e0(recs)
        return E0Choice("average", {z: v for z in zs})
    if method == "isolated":
        if not have_iso:
            raise ValueError(f"e0_method isolated: no isolated atom of {_names(z for z in zs if z not in iso)}")
        return E0Choice("isolated", {z: iso[z] for z in zs})
    if method == "auto" and have_iso:
        return E0Choice("isolated", {z: iso[z] for z in zs})
    values, cond = least_squares_e0(recs, zs)
    if cond <= COND_MAX:
        return E0Choice("least_squares", values, cond)
    why = (
        f"the compositions of the training structures hardly vary (condition number of the composition matrix "
        f"{cond:.3g} > {COND_MAX:g}): a least-squares e0 per species is not determined"
    )
    if have_iso:
        return E0Choice("isolated", {z: iso[z] for z in zs}, cond, why + "; using the isolated atoms' energies")
    v = average_e0(recs)
    missing = [z for z in zs if z not in iso]
    return E0Choice(
        "average",
        {z: v for z in zs},
        cond,
        why + f", and {_names(missing)} ha{'s' if len(missing) == 1 else 've'} no isolated atom; using one "
        f"common e0 per atom ({v:.6g} eV, the mean energy per atom)",
    )


def gap_fit_e0(values: Mapping[int, float]) -> str:
    """gap_fit's per-species e0 argument: ``e0={In:-1.25:P:-4.5}`` (checked with QUIP's gap_fit)."""
    from ase.data import chemical_symbols

    return "e0={" + ":".join(f"{chemical_symbols[z]}:{float(v)!r}" for z, v in sorted(values.items())) + "}"
