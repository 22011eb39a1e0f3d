"""PPSO's two-stage strategy (Kondati Natarajan & Caro, arXiv:2101.00049).

Stage 1 searches the SOAP shape hyperparameters and zeta. Its objective
(``stage1.objective``) is either the shape of the kernel distribution of the training
environments (``kernel``, PPSO as published, :mod:`potune.descriptors.kernel`: no GAP is
fitted) or the validation loss of a cheap, low-fidelity GAP fit (``proxy``: a seeded subset
of fold 0's training structures, few sparse points, fixed delta and sigmas, optionally
energies only; ``stage1.proxy``). Stage 2 is the ordinary search loop over the GAP
hyperparameters (delta, sigma_E, sigma_F, n_sparse, ...) by validation loss, at full
fidelity, with stage 1's best descriptor held fixed.

Configuration (see config/README.md): ``strategy: two_stage``; ``stage1: {space, optimizer,
stop}`` for stage 1 (``stage1.optimizer`` is merged over ``optimizer``); the top-level
``space``/``optimizer``/``stop`` are stage 2; ``fixed`` serves both (stage 1 reads its
descriptor entries). ``kernel`` sets the statistics, ``refit_forces`` the extra refit.

This module owns the strategy's configuration; its rule steps are in :mod:`potune.steps.stage1`.
"""

from __future__ import annotations

import copy
import os

from ..descriptors.kernel import OBJECTIVES
from ..descriptors.soap import STAGE1_HYPERPARAMETERS
from ..errors import ConfigError
from ..io import read_yaml
from ..merge import deep_merge
from .space import Space

#: the GAP hyperparameters a proxy fit sets from ``stage1.proxy`` (over ``fixed``)
PROXY_HYPERPARAMETERS = ("n_sparse", "delta", "sigma_energy", "sigma_force")


def is_two_stage(cfg: dict) -> bool:
    return cfg.get("strategy", "joint") == "two_stage"


def stage1_objective(cfg: dict) -> str:
    """``kernel`` (PPSO's kernel distribution, no fit) or ``proxy`` (low-fidelity GAP fits)."""
    return (cfg.get("stage1") or {}).get("objective", "kernel")


def proxy_settings(cfg: dict) -> dict:
    """The fitter settings of a stage-1 proxy fit: ``gap`` with ``energy_only`` from ``stage1.proxy``."""
    proxy = (cfg.get("stage1") or {}).get("proxy") or {}
    return {**(cfg.get("gap") or {}), "energy_only": bool(proxy.get("energy_only", False))}


def stage1_config(cfg: dict) -> dict:
    """The configuration stage 1 runs with: its own space, optimiser (``stage1.optimizer``
    merged over ``optimizer``; priors only from ``stage1.optimizer.priors``) and stop rules;
    ``fixed`` reduced to the descriptor hyperparameters and zeta (objective ``kernel``), or,
    for objective ``proxy``, all of ``fixed`` with the proxy's GAP hyperparameters
    (:data:`PROXY_HYPERPARAMETERS`, from ``stage1.proxy``) over it: what each proxy fit is
    run with, recorded in every stage-1 proposal."""
    s1 = cfg.get("stage1") or {}
    opt = deep_merge(cfg["optimizer"], s1.get("optimizer") or {})
    opt["priors"] = (s1.get("optimizer") or {}).get("priors")
    out = copy.deepcopy(cfg)
    out["space"] = copy.deepcopy(s1.get("space") or {})
    out["optimizer"] = opt
    out["stop"] = copy.deepcopy(s1.get("stop") or {})
    fixed = cfg.get("fixed") or {}
    if stage1_objective(cfg) == "proxy":
        proxy = s1.get("proxy") or {}
        out["fixed"] = {**fixed, **{k: proxy[k] for k in PROXY_HYPERPARAMETERS if proxy.get(k) is not None}}
    else:
        out["fixed"] = {k: v for k, v in fixed.items() if k in STAGE1_HYPERPARAMETERS}
    return out


def stage2_config(cfg: dict, stage1_best: str | os.PathLike | dict) -> dict:
    """``cfg`` with stage 1's best descriptor hyperparameters added to ``fixed``."""
    best = read_yaml(stage1_best) if not isinstance(stage1_best, dict) else stage1_best
    out = copy.deepcopy(cfg)
    out["fixed"] = {**(cfg.get("fixed") or {}), **best["point"]}
    return out


def check_config(cfg: dict) -> None:
    """Meaning of the two-stage keys (after the schema): raises :class:`ConfigError`."""
    obj = (cfg.get("kernel") or {}).get("objective") or {}
    if obj.get("kind", "std_skew") not in OBJECTIVES:
        raise ConfigError(f"kernel.objective.kind: {obj.get('kind')!r} is not one of {', '.join(OBJECTIVES)}")
    if cfg.get("refit_forces") and not (cfg.get("gap") or {}).get("energy_only"):
        raise ConfigError(
            "refit_forces: the search already trains on forces (gap.energy_only is false); "
            "set gap.energy_only: true to compare an energy-only search with a refit on forces"
        )
    if cfg.get("refit_forces") and cfg["fitter"] != "gap":
        raise ConfigError("refit_forces: only for fitter gap")
    if not is_two_stage(cfg):
        return
    if cfg["fitter"] != "gap":
        raise ConfigError(f"strategy: two_stage needs fitter gap (SOAP descriptors), got {cfg['fitter']!r}")
    s1 = cfg.get("stage1") or {}
    space1 = Space.from_config(s1.get("space") or {}) if s1.get("space") else None
    if space1 is None:
        raise ConfigError("stage1.space: strategy two_stage needs a stage-1 search space (SOAP hyperparameters, zeta)")
    wrong = [n for n in space1.names if n not in STAGE1_HYPERPARAMETERS]
    if wrong:
        raise ConfigError(
            f"stage1.space.{wrong[0]}: not a descriptor hyperparameter; stage 1 searches only "
            f"{', '.join(sorted(STAGE1_HYPERPARAMETERS))} (put GAP hyperparameters in space)"
        )
    both = sorted(set(space1.names) & set(cfg.get("space") or {}))
    if both:
        raise ConfigError(f"stage1.space.{both[0]}: also in space; stage 2 holds stage 1's best value fixed")
    both = sorted(set(space1.names) & set(cfg.get("fixed") or {}))
    if both:
        raise ConfigError(f"fixed.{both[0]}: is also in stage1.space; a hyperparameter is either fixed or searched")
    from ..fitters.gap import check_config as gap_check
    from .optimizers import REGISTRY

    gap_check({**cfg, "space": s1["space"]}, space1)
    from ..config import _check_integers, integer_hyperparameters
    from ..fitters import gap

    _check_integers({}, space1, integer_hyperparameters(gap), prefix="stage1.")
    kind = (s1.get("optimizer") or {}).get("kind")  # else optimizer.kind, checked with the rest of optimizer
    if kind is not None and kind not in REGISTRY:
        raise ConfigError(
            f"stage1.optimizer.kind: unknown optimiser {kind!r}; available: {', '.join(sorted(REGISTRY))}"
        )
