"""The optimiser registry: ``optimizer.kind`` -> a factory of an ask/tell optimiser
(:mod:`potune.search.protocol`), and the check of the ``optimizer`` section.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .bayes import BayesOptimizer, resolve_liar
from .designs import DESIGNS, DesignOptimizer
from .protocol import AskTell
from .pso import PSOOptimizer
from .space import Space

#: name -> factory(space, optimizer config) ; other modules register their optimisers here
REGISTRY: dict[str, Callable[[Space, dict], AskTell]] = {}


def register(kind: str):
    def deco(factory):
        REGISTRY[kind] = factory
        return factory

    return deco


def lookahead(opt_cfg: dict) -> int:
    """Iterations proposed before the previous one has finished (``optimizer.lookahead``;
    ``null``: 1, except 0 for ``pso``, whose generations need the previous one's losses).

    With lookahead L, iteration n is proposed from the trials of the iterations before n - L,
    with the proposals of iterations n - L ... n - 1 as pending points (see
    :func:`potune.search.loop.conditioning`), so up to ``batch_size * (L + 1)`` trials are in flight."""
    value = opt_cfg.get("lookahead")
    if value is None:
        return 0 if opt_cfg.get("kind", "bayes") == "pso" else 1
    value = int(value)
    if value < 0:
        raise ConfigError(f"optimizer.lookahead: {value} is negative; use 0 (each iteration waits) or more")
    return value


def in_flight(opt_cfg: dict) -> int:
    """The most trials fitted at once: ``batch_size * (lookahead + 1)``; also the default
    ``n_initial`` of ``bayes`` (every trial proposed before any loss is known comes from the
    initial design, not from random points)."""
    return int(opt_cfg.get("batch_size", 4)) * (lookahead(opt_cfg) + 1)


@register("bayes")
def _make_bayes(space: Space, cfg: dict) -> BayesOptimizer:
    return BayesOptimizer(
        space,
        seed=int(cfg.get("seed", 0)),
        n_initial=int(cfg.get("n_initial") or in_flight(cfg)),
        initial_design=cfg.get("initial_design", "sobol"),
        base_estimator=cfg.get("base_estimator", "GP"),
        acq_func=cfg.get("acq_func", "gp_hedge"),
        liar=cfg.get("liar"),
        log_loss=bool(cfg.get("log_loss", True)),
    )


@register("pso")
def _make_pso(space: Space, cfg: dict) -> PSOOptimizer:
    pso = cfg.get("pso") or {}
    return PSOOptimizer(
        space,
        seed=int(cfg.get("seed", 0)),
        swarm_size=int(cfg.get("batch_size", 4)),
        c1=float(pso.get("c1", 1.0)),
        c2=float(pso.get("c2", 2.0)),
        dt=float(pso.get("dt", 1.0)),
        inertia=float(pso.get("inertia", 0.0)),
        boundary=pso.get("boundary", "redraw"),
    )


def _design_factory(kind: str):
    def make(space: Space, cfg: dict) -> DesignOptimizer:
        return DesignOptimizer(space, kind, seed=int(cfg.get("seed", 0)), grid_points=int(cfg.get("grid_points") or 5))

    make.__name__ = f"_make_{kind}"
    return make


for _kind in DESIGNS:
    register(_kind)(_design_factory(_kind))


def make_optimizer(space: Space, cfg: dict) -> AskTell:
    """Build the optimiser named by ``cfg["kind"]``."""
    kind = cfg.get("kind", "bayes")
    if kind not in REGISTRY:
        raise ConfigError(f"optimizer.kind: unknown optimiser {kind!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind](space, cfg)


def check_optimizer_config(space: Space, cfg: dict) -> None:
    """Stop a bad ``optimizer`` section before any job: unknown kind, GBRT, bad PSO
    settings, a grid too large. Cheap: skopt is not imported (``bayes`` options are checked
    by name); the other optimisers are built once."""
    kind = cfg.get("kind", "bayes")
    if kind == "pso" and cfg.get("lookahead"):
        raise ConfigError(
            "optimizer.lookahead: pso moves a generation by the losses of the previous one; use 0 (or leave it unset)"
        )
    if kind == "bayes" and REGISTRY.get("bayes") is _make_bayes:
        BayesOptimizer.check_options(
            cfg.get("base_estimator", "GP"),
            cfg.get("acq_func", "gp_hedge"),
            cfg.get("initial_design", "sobol"),
            resolve_liar(cfg.get("liar"), cfg.get("base_estimator", "GP")),
        )
        return
    make_optimizer(space, cfg)
