"""The fitters potune can optimise, behind one small interface.

A fitter is a module (or object) with

- ``HYPERPARAMETERS``: ``{name: default}`` of everything ``space``/``fixed`` may name;
- ``fit(params, settings, train_file, model_dir, log_file, species_z, seed, timeout_s,
  mem_limit_mb, threads) -> RunResult`` — never raises for a failing fit;
- ``calculator(model_dir)`` — an ASE calculator of the fitted model.
"""

from __future__ import annotations

import importlib

from .errors import ConfigError

#: fitter name -> module path
FITTERS = {"gap": "potune.gap", "snap": "potune.snap"}


def get_fitter(name: str):
    if name not in FITTERS:
        raise ConfigError(f"fitter: unknown fitter {name!r}; available: {', '.join(sorted(FITTERS))}")
    return importlib.import_module(FITTERS[name])
