"""Optimisers behind one ask/tell interface, modelled on scikit-optimize's ``Optimizer``.

Every optimiser takes a :class:`~potune.space.Space` and a seed, and offers

- ``ask(n) -> list of points`` (a point is a list of values in the space's order),
- ``tell(points, losses)``,
- ``state() -> dict`` (readable state, written beside each iteration's proposals).

The workflow never keeps an optimiser alive between iterations: each ``propose`` job
rebuilds it from the configuration and replays the trial table, one ``tell`` per past
iteration in order, then asks for the next batch. The same configuration, seed and trial
table therefore always give the same proposals, and a killed run resumes exactly.
"""

from __future__ import annotations

import warnings
from typing import Callable, Protocol, Sequence

import numpy as np

from .errors import ConfigError
from .space import Space

ESTIMATORS = ("GP", "RF", "ET")
ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")
INITIAL_DESIGNS = ("sobol", "lhs", "halton", "hammersly", "random")
LIARS = ("cl_min", "cl_mean", "cl_max")


class AskTell(Protocol):
    def ask(self, n: int) -> list[list]: ...

    def tell(self, points: Sequence[Sequence], losses: Sequence[float]) -> None: ...

    def state(self) -> dict: ...


def _same(a: Sequence, b: Sequence) -> bool:
    return all((x == y) if not isinstance(x, float) else np.isclose(x, y, rtol=1e-9, atol=0) for x, y in zip(a, b))


def dedupe(points: list[list], seen: Sequence[Sequence], space: Space, rng: np.random.Generator) -> list[list]:
    """Replace points that repeat an earlier point (or one in the same batch) by random ones.

    Integer and categorical spaces make constant-liar batches repeat themselves; a repeated
    trial wastes a fit.
    """
    sk = space.to_skopt()
    out: list[list] = []
    for p in points:
        tries = 0
        while any(_same(p, q) for q in list(seen) + out) and tries < 100:
            p = sk.rvs(1, random_state=int(rng.integers(2**31 - 1)))[0]
            tries += 1
        out.append([space.params[i].coerce(v) for i, v in enumerate(p)])
    return out


class BayesOptimizer:
    """scikit-optimize Bayesian optimisation with batch proposals by constant liar.

    Parameters
    ----------
    space, seed
        Search space and random seed.
    n_initial
        Points of the initial design before the surrogate model is used.
    initial_design
        ``sobol``, ``lhs``, ``halton``, ``hammersly`` or ``random``.
    base_estimator
        ``GP`` (Gaussian process), ``RF`` (random forest) or ``ET`` (extra trees).
        ``GBRT`` is refused: it is broken with scikit-learn >= 1.6.
    acq_func
        ``gp_hedge``, ``EI``, ``LCB`` or ``PI``.
    liar
        Batch strategy ``cl_min``, ``cl_mean`` or ``cl_max``.
    """

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_initial: int = 4,
        initial_design: str = "sobol",
        base_estimator: str = "GP",
        acq_func: str = "gp_hedge",
        liar: str = "cl_min",
    ):
        from skopt import Optimizer

        if str(base_estimator).upper() == "GBRT":
            raise ConfigError(
                "optimizer.base_estimator: GBRT is broken with scikit-learn >= 1.6 (skopt 0.10.2); use GP, RF or ET"
            )
        if base_estimator not in ESTIMATORS:
            raise ConfigError(f"optimizer.base_estimator: {base_estimator!r} is not one of {', '.join(ESTIMATORS)}")
        if acq_func not in ACQ_FUNCS:
            raise ConfigError(f"optimizer.acq_func: {acq_func!r} is not one of {', '.join(ACQ_FUNCS)}")
        if initial_design not in INITIAL_DESIGNS:
            raise ConfigError(f"optimizer.initial_design: {initial_design!r} is not one of {', '.join(INITIAL_DESIGNS)}")
        if liar not in LIARS:
            raise ConfigError(f"optimizer.liar: {liar!r} is not one of {', '.join(LIARS)}")
        self.space = space
        self.liar = liar
        self.rng = np.random.default_rng(seed)
        self.seen: list[list] = []
        self.n_told = 0
        self._buf_x: list[list] = []
        self._buf_y: list[float] = []
        self.opt = Optimizer(
            space.to_skopt().dimensions,
            base_estimator=base_estimator,
            n_initial_points=max(1, int(n_initial)),
            initial_point_generator=initial_design,
            acq_func=acq_func,
            random_state=int(seed),
        )

    def tell(self, points: Sequence[Sequence], losses: Sequence[float]) -> None:
        """Record evaluated points. They reach the surrogate at the next ``ask``, in one
        skopt ``tell`` (one model fit however many iterations were replayed)."""
        points = [list(p) for p in points]
        self._buf_x += points
        self._buf_y += [float(v) for v in losses]
        self.seen += points
        self.n_told += len(points)

    def ask(self, n: int) -> list[list]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            warnings.filterwarnings("ignore", message="The objective has been evaluated at point")
            if self._buf_x:
                self.opt.tell(self._buf_x, self._buf_y)
                self._buf_x, self._buf_y = [], []
            pts = self.opt.ask(n_points=int(n), strategy=self.liar)
        return dedupe(pts, self.seen, self.space, self.rng)

    def state(self) -> dict:
        return {
            "kind": "bayes",
            "n_told": self.n_told,
            "initial_points_left": max(0, int(self.opt._n_initial_points)),
            "best_loss": float(min(self.opt.yi + self._buf_y)) if (self.opt.yi or self._buf_y) else None,
        }


#: name -> factory(space, optimizer config) ; other modules register their optimisers here
REGISTRY: dict[str, Callable[[Space, dict], AskTell]] = {}


def register(kind: str):
    def deco(factory):
        REGISTRY[kind] = factory
        return factory

    return deco


@register("bayes")
def _make_bayes(space: Space, cfg: dict) -> BayesOptimizer:
    return BayesOptimizer(
        space,
        seed=int(cfg.get("seed", 0)),
        n_initial=int(cfg.get("n_initial") or cfg.get("batch_size", 4)),
        initial_design=cfg.get("initial_design", "sobol"),
        base_estimator=cfg.get("base_estimator", "GP"),
        acq_func=cfg.get("acq_func", "gp_hedge"),
        liar=cfg.get("liar", "cl_min"),
    )


def make_optimizer(space: Space, cfg: dict) -> AskTell:
    """Build the optimiser named by ``cfg["kind"]``."""
    kind = cfg.get("kind", "bayes")
    if kind not in REGISTRY:
        raise ConfigError(f"optimizer.kind: unknown optimiser {kind!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind](space, cfg)
