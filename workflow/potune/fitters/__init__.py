"""The fitters potune can optimise, behind one small interface (:class:`Fitter`).

A fitter is a module with

- ``HYPERPARAMETERS``: ``{name: default}`` of everything ``space``/``fixed`` may name;
- ``fit(params, settings, train_file, model_dir, log_file, species_z, seed, timeout_s,
  mem_limit_mb, threads, **extra) -> RunResult``: never raises for a failing fit;
- ``calculator(model_dir)``: an ASE calculator of the fitted model;
- ``check_config(cfg, space)``: fitter-specific checks of a configuration (raise ``ConfigError``);
- ``descriptor_length(params, settings, species_z)``: the length of one atom's descriptor
  (``None`` where not known), a cost measure in the trial table;
- optionally ``peak_mem_mb(params, settings, stats)``: the expected peak memory of one fit
  (MB) for a :class:`potune.data.stats.DatasetStats`; without it a fit job asks for
  ``resources.fit.mem_mb`` or the fallback.

A new fitter is one new module (or package) here plus one line in :data:`FITTERS`.
"""

import importlib
from typing import Protocol

from ..errors import ConfigError

#: fitter name -> module path
FITTERS = {"gap": "potune.fitters.gap", "snap": "potune.fitters.snap"}


class Fitter(Protocol):
    """What a fitter module offers (see the module docstring)."""

    HYPERPARAMETERS: dict

    def fit(
        self,
        params: dict,
        settings: dict,
        train_file,
        model_dir,
        log_file,
        species_z,
        seed: int = 0,
        timeout_s: float | None = None,
        mem_limit_mb: float | None = None,
        threads: int = 1,
        **extra,
    ): ...

    def calculator(self, model_dir): ...

    def check_config(self, cfg: dict, space) -> None: ...

    def descriptor_length(self, params: dict, settings: dict, species_z) -> int | None: ...


def default_values(fitter: Fitter, names) -> dict:
    """The fitter's default value of each hyperparameter in ``names`` that has one (a fitter
    may define ``default_of(name)`` for names beyond its table, e.g. snap's ``eweight[<ct>]``;
    derived defaults, ``None`` in the table, are left out)."""
    lookup = getattr(fitter, "default_of", None) or fitter.HYPERPARAMETERS.get
    out = {}
    for n in names:
        v = lookup(n)
        if v is not None:
            out[n] = v
    return out


def get_fitter(name: str) -> Fitter:
    """The fitter module registered as ``name``."""
    if name not in FITTERS:
        raise ConfigError(f"fitter: unknown fitter {name!r}; available: {', '.join(sorted(FITTERS))}")
    return importlib.import_module(FITTERS[name])
