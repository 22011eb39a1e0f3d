"""Optimisers behind one ask/tell interface, modelled on scikit-optimize's ``Optimizer``.

Every optimiser takes a :class:`~potune.search.space.Space` and a seed, and offers

- ``ask(n) -> list of points`` (a point is a list of values in the space's order),
- ``tell(points, losses, failed=None, prior=False)``: ``failed`` marks failed trials (their
  loss is the failure penalty; PSO counts them as +inf for its bests), ``prior`` marks
  trials of an earlier search told before the first ask (warm start),
- ``state() -> dict`` (readable state, written beside each iteration's proposals).

The workflow never keeps an optimiser alive between iterations: each ``propose`` job
rebuilds it from the configuration and replays the trial table, one ``tell`` per past
iteration in order, then asks for the next batch. The same configuration, seed and trial
table therefore always give the same proposals, and a killed run resumes exactly. Every
random draw of the optimisers below depends only on the seed and the history told.

Kinds (``optimizer.kind``):

``bayes``
    scikit-optimize Bayesian optimisation, batches by constant liar, Kriging believer or local
    penalisation (:class:`potune.search.bayes.BayesOptimizer`).
``pso``
    particle swarm of the PPSO paper, one particle per trial of a batch (:class:`potune.search.pso.PSOOptimizer`).
``sobol``, ``lhs``, ``random``, ``grid``
    designs of experiments that ignore the losses (:class:`potune.search.designs.DesignOptimizer`), the offline
    path of the PPSO paper; a baseline, or a start for another search (``priors``).

This module holds the protocol and the helpers the optimisers share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .space import Space


class AskTell(Protocol):
    def ask(self, n: int, pending: Sequence[Sequence] | None = None) -> list[list]:
        """``n`` new points; ``pending``: points already proposed whose losses are not known
        yet (``optimizer.lookahead``), to be treated as taken, not proposed again."""
        ...

    def tell(
        self,
        points: Sequence[Sequence],
        losses: Sequence[float],
        failed: Sequence[bool] | None = None,
        prior: bool = False,
    ) -> None: ...

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


def _told_losses(losses: Sequence[float], failed: Sequence[bool] | None) -> np.ndarray:
    """Losses as floats, with failed trials and non-finite losses as +inf."""
    out = np.array([float(v) if v is not None else math.inf for v in losses], dtype=float)
    if failed is not None:
        out[np.asarray(failed, dtype=bool)] = math.inf
    out[~np.isfinite(out)] = math.inf
    return out


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _key(point: Sequence) -> tuple:
    """A hashable key of a point, tolerant of float round trips through CSV."""
    return tuple(float(f"{v:.10g}") if isinstance(v, float) else str(v) if not isinstance(v, int) else v for v in point)
