"""SOAP vectors of atomic environments through ``quippy.descriptors.Descriptor``.

The descriptor stage of the PPSO two-stage strategy needs the SOAP vectors of the training
environments for one set of descriptor hyperparameters, without fitting a GAP. The
descriptor strings are built by :func:`potune.fitters.gap.descriptor_strings` (the same code that
writes gap_fit's ``gap={...}``), so a stage-1 trial describes exactly the descriptor that a
stage-2 fit uses.

Multi-species data: one descriptor per central species (soap_turbo ``central_index``, soap
``Z``), as gap_fit does; environments carry their central atomic number so that kernels are
only taken between environments of the same central species (GAP never compares others).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.read import species as data_species
from ..errors import FitterError, exception_text, is_fitter_failure
from ..fitters import gap

#: hyperparameters that shape the SOAP vectors (stage 1 of the two-stage strategy)
DESCRIPTOR_HYPERPARAMETERS = frozenset(
    {"cutoff", "cutoff_transition_width", "atom_sigma", "n_max", "l_max", "central_weight"} | gap.SOAP_TURBO_ONLY
)
#: the kernel exponent: shapes the kernel distribution without any fit
KERNEL_HYPERPARAMETERS = frozenset({"zeta"})
#: everything stage 1 may search or hold fixed
STAGE1_HYPERPARAMETERS = DESCRIPTOR_HYPERPARAMETERS | KERNEL_HYPERPARAMETERS


@dataclass
class SoapVectors:
    """Normalised SOAP vectors of every environment of a set of structures.

    Attributes
    ----------
    vectors
        (N_env, D) float64, each row of unit length.
    central_z
        (N_env,) atomic number of each environment's central atom.
    structure
        (N_env,) index of the structure each environment belongs to.
    atom
        (N_env,) index of the central atom within its structure.
    """

    vectors: np.ndarray
    central_z: np.ndarray
    structure: np.ndarray
    atom: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)


def quippy_descriptor_strings(params: dict, settings: dict, species_z: Sequence[int]) -> list[tuple[int, str]]:
    """``(central Z, descriptor string)`` for ``quippy.descriptors.Descriptor``, one per species.

    Parameters
    ----------
    params
        Hyperparameters (any subset of :data:`potune.fitters.gap.HYPERPARAMETERS`; defaults fill the rest).
    settings
        The ``gap`` section of the configuration (``descriptor``: soap or soap_turbo).
    species_z
        Atomic numbers present in the data, sorted.
    """
    p = gap.resolve_params(params)
    gap.check_params(p)
    kind = settings.get("descriptor", "soap")
    species_z = [int(z) for z in species_z]
    if kind == "soap_turbo":
        strings = gap.descriptor_strings(p, {"descriptor": "soap_turbo"}, species_z, for_gap_fit=False, gp=False)
        return [(z, s.replace(" add_species=F", "").strip()) for z, s in zip(species_z, strings)]
    if kind == "soap":
        (s,) = gap.descriptor_strings(p, {"descriptor": "soap"}, species_z, for_gap_fit=False, gp=False)
        base = s.replace(" add_species=T", "").strip()
        zs = "{" + " ".join(str(z) for z in species_z) + "}"
        return [(z, f"{base} n_species={len(species_z)} species_Z={zs} Z={z}") for z in species_z]
    raise ValueError(f"gap.descriptor: unknown descriptor {kind!r}; choose soap or soap_turbo")


def soap_dimension(params: dict, settings: dict, n_species: int) -> int:
    """Length of one SOAP vector for hyperparameters ``params`` and the ``gap`` settings
    (:func:`potune.fitters.gap.soap_dimension`)."""
    p = gap.resolve_params(params)
    return gap.soap_dimension(p["n_max"], p["l_max"], n_species, settings.get("descriptor", "soap"))


def reset_soap_turbo_basis(n_max_total: int) -> None:
    """Make soap_turbo rebuild its radial basis on its next call in this process.

    soap_turbo's ``get_soap`` keeps the orthonormalisation matrices of its radial basis (for
    poly3gauss they depend on ``atom_sigma_r`` and ``rcut_hard``) in Fortran ``save``
    variables and rebuilds them only when the total ``alpha_max`` differs from the previous
    call. A second descriptor with the same ``n_max`` in one process would silently reuse the
    first one's basis. Evaluating a throwaway descriptor with another total ``alpha_max``
    forces the rebuild.

    Parameters
    ----------
    n_max_total
        Total ``alpha_max`` (summed over species) of the descriptor about to be evaluated.
    """
    from ase import Atoms
    from quippy.descriptors import Descriptor

    n = 2 if int(n_max_total) == 1 else 1  # any other total alpha_max; a small one stays cheap and well-conditioned
    d = Descriptor(
        f"soap_turbo l_max=1 alpha_max={{{n}}} atom_sigma_r={{0.5}} atom_sigma_t={{0.5}} "
        "atom_sigma_r_scaling={0.0} atom_sigma_t_scaling={0.0} amplitude_scaling={1.0} central_weight={1.0} "
        "radial_enhancement=0 basis=poly3gauss scaling_mode=polynomial rcut_hard=2.0 rcut_soft=1.5 "
        "n_species=1 species_Z={1} central_index=1"
    )
    d.calc(Atoms("H2", positions=[[0, 0, 0], [1.0, 0, 0]], cell=[10, 10, 10], pbc=True))


def soap_vectors(frames: Sequence, params: dict, settings: dict, species_z: Sequence[int] | None = None) -> SoapVectors:
    """SOAP vectors of every atom of ``frames`` (normalised rows).

    Parameters
    ----------
    frames
        ASE structures.
    params, settings
        Hyperparameters and the ``gap`` settings (see :func:`quippy_descriptor_strings`).
    species_z
        Species the descriptor knows (default: those present in ``frames``).

    Raises
    ------
    FitterError
        Invalid hyperparameters, or quippy could not build or evaluate the descriptor
        (message says which string).
    """
    from quippy.descriptors import Descriptor

    species_z = list(species_z) if species_z is not None else data_species(frames)
    try:
        strings = quippy_descriptor_strings(params, settings, species_z)
    except ValueError as exc:  # gap.check_params: hyperparameters quippy would refuse
        raise FitterError(f"invalid hyperparameters: {exc}") from exc
    descs = []
    for z, s in strings:
        try:
            descs.append((z, Descriptor(s)))
        except Exception as exc:  # quippy raises RuntimeError on a bad string
            if not is_fitter_failure(exc):
                raise
            raise FitterError(f"quippy could not build descriptor {s!r}: {exc}") from exc
    if settings.get("descriptor", "soap") == "soap_turbo":
        reset_soap_turbo_basis(int(gap.resolve_params(params)["n_max"]) * len(species_z))
    vecs, cz, st, at = [], [], [], []
    for i, atoms in enumerate(frames):
        a = atoms.copy()
        a.calc = None
        for z, d in descs:
            idx = np.flatnonzero(a.numbers == z)
            if len(idx) == 0:
                continue
            try:
                out = d.calc(a)
            except Exception as exc:
                if not is_fitter_failure(exc):
                    raise
                raise FitterError(
                    f"structure {i}: quippy could not evaluate the descriptor: {exception_text(exc)}"
                ) from exc
            data = np.asarray(out.get("data", np.zeros((0, 0))), dtype=float)
            if data.ndim != 2 or len(data) != len(idx):
                raise FitterError(f"structure {i}: descriptor for Z={z} gave {data.shape} rows for {len(idx)} atoms")
            ci = np.asarray(out.get("ci", []), dtype=int).ravel()
            # quippy's 'ci' are 1-based central atom indices (Fortran); fall back to order of atoms
            atoms_idx = ci - 1 if len(ci) == len(idx) and set(ci - 1) == set(idx) else idx
            vecs.append(data)
            cz.append(np.full(len(idx), z))
            st.append(np.full(len(idx), i))
            at.append(np.asarray(atoms_idx, dtype=int))
    if not vecs:
        raise FitterError("no environments: the structures hold none of the descriptor's species")
    X = np.vstack(vecs)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    X = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    return SoapVectors(X, np.concatenate(cz), np.concatenate(st), np.concatenate(at))
