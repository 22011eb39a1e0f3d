"""SNAP and qSNAP fits: FitSNAP (LAMMPS ``compute snap``) computes the bispectrum
descriptors, potune solves the weighted linear least squares, LAMMPS ``pair_style snap``
predicts.

Hyperparameters (names for ``space`` and ``fixed``; defaults in :data:`HYPERPARAMETERS`)
------------------------------------------------------------------------------------------
Descriptor hyperparameters (they determine the bispectrum matrix):

- ``rcutfac``, ``twojmax``, ``rfac0``, ``rmin0`` — as in LAMMPS ``compute snap``;
- ``radelem`` and ``wj`` — element radius and weight of every element;
  ``radelem[<El>]`` / ``wj[<El>]`` (e.g. ``radelem[Ga]``) override them for one element;
- ``quadratic`` — false: linear SNAP, true: qSNAP (``quadraticflag 1``).

Fit hyperparameters (they only change the weighted least squares):

- ``eweight`` / ``fweight`` — weight of every energy row (energy per atom, eV/atom) and
  force-component row (eV/Å), as XPOT's/FitSNAP's group weights;
  ``eweight[<config_type>]`` / ``fweight[<config_type>]`` override them for one
  config_type (e.g. ``eweight[AIMD-NVT]``); structures without a config_type are in
  group ``default``;
- ``solver`` — ``svd`` (minimum-norm least squares, FitSNAP's SVD solver) or ``ridge``;
- ``ridge_alpha`` — the ridge regularisation (``solver: ridge``).

Descriptor cache
----------------
The descriptor matrix of a training set is compressed, per (config_type, energy/force)
block, to the R factor of the QR decomposition of ``[A_block | b_block]``. For any
block weights ``w_g`` the weighted problem ``min sum_g w_g^2 |A_g x - b_g|^2`` equals
``min |stack(w_g R_g[:, :n]) x - stack(w_g R_g[:, n])|^2`` up to a constant, with the same
singular values, so a trial whose descriptor hyperparameters were seen before only solves a
small ``(blocks * n) x n`` problem. The cache (``blocks.npz`` + ``meta.json``) is written
by :func:`.descriptors.compute_descriptors`, which runs FitSNAP and LAMMPS in a subprocess
(:mod:`.descriptors`): a LAMMPS error or abort becomes a failed trial.

Nested search
-------------
With weights (or solver settings) and descriptor hyperparameters in the space,
``snap.nested`` (default ``auto``) makes the outer optimiser propose only the descriptor
hyperparameters; each fit job tunes the weights on the cached blocks by the validation loss
computed from the validation fold's compressed blocks (:mod:`.nested`); with
``snap.inner.folds`` k > 1 by the k-fold cross-validation loss on the training structures,
from the cache's CV blocks.

Modules: :mod:`.params` (names, checks, the descriptor specification and cache keys),
:mod:`.descriptors` (the descriptor cache: FitSNAP + LAMMPS in a subprocess),
:mod:`.solve` (the weighted least squares), :mod:`.export` (LAMMPS model files),
:mod:`.calculator` (predictions), :mod:`.nested` (the inner weight search) and
:mod:`.fit` (one trial). This package is the fitter
module of :mod:`potune.fitters` (``HYPERPARAMETERS``, ``fit``, ``calculator``,
``check_config``, ``descriptor_length``).
"""

from .calculator import calculator, linear_predict
from .descriptors import check_cache, compute_descriptors, load_blocks, load_cv_blocks, load_valid_blocks
from .export import read_model, write_model
from .fit import fit
from .params import (
    DESCRIPTOR_HPS,
    HYPERPARAMETERS,
    PER_CONFIG_TYPE,
    PER_ELEMENT,
    accepts_hyperparameter,
    check_config,
    data_key,
    default_of,
    descriptor_length,
    descriptor_spec,
    n_bispectrum,
    resolve_params,
    spec_key,
)
from .solve import solve

__all__ = [
    "DESCRIPTOR_HPS",
    "HYPERPARAMETERS",
    "PER_CONFIG_TYPE",
    "PER_ELEMENT",
    "accepts_hyperparameter",
    "calculator",
    "check_cache",
    "check_config",
    "compute_descriptors",
    "data_key",
    "default_of",
    "descriptor_length",
    "descriptor_spec",
    "fit",
    "linear_predict",
    "load_blocks",
    "load_cv_blocks",
    "load_valid_blocks",
    "n_bispectrum",
    "read_model",
    "resolve_params",
    "solve",
    "spec_key",
    "write_model",
]
