"""Designs of experiments that ignore the losses: Sobol, Latin hypercube, random, grid."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .protocol import _key, dedupe
from .pso import Box
from .space import Space

DESIGNS = ("sobol", "lhs", "random", "grid")


#: grids larger than this are refused (a typo in grid_points should not allocate gigabytes)
MAX_GRID = 100_000


class DesignOptimizer:
    """Designs of experiments, which ignore the losses: the offline path of the PPSO paper
    (its Figure 2), a baseline, and a way to start a search (see ``optimizer.priors``).

    - ``sobol``: one scrambled Sobol sequence (scipy), continued batch after batch;
    - ``lhs``: each batch is a Latin hypercube of ``batch_size`` points (for a one-shot
      design, set ``batch_size`` to the design size and ``stop.max_iterations: 1``);
    - ``random``: uniform draws;
    - ``grid``: the full factorial grid, ``grid_points`` levels per real dimension (evenly
      spaced, in log for log-uniform; integers: every value if there are at most
      ``grid_points``, else ``grid_points`` evenly spaced ones; categorical: every value),
      in a seeded random order so that every batch spreads over the space. When every grid
      point has been evaluated :meth:`ask` returns fewer points (none at the end), and the
      search stops.

    Points are drawn uniformly in :class:`Box` coordinates (so log-uniform priors hold);
    a point repeating an evaluated one (integer/categorical spaces) is replaced by a random
    one. Draws depend only on the seed and the number of trials told.
    """

    def __init__(self, space: Space, kind: str, seed: int = 0, grid_points: int = 5):
        if kind not in DESIGNS:
            raise ConfigError(f"optimizer.kind: {kind!r} is not a design ({', '.join(DESIGNS)})")
        if int(grid_points) < 2:
            raise ConfigError(f"optimizer.grid_points: must be >= 2, got {grid_points}")
        self.space = space
        self.kind = kind
        self.box = Box(space)
        self.seed = int(seed)
        self.grid_points = int(grid_points)
        self.cursor = 0  # trials of this search told so far
        self.n_priors = 0
        self.n_pending = 0
        self.seen: list[list] = []
        self._grid: list[list] | None = None
        if kind == "grid":
            self._grid = self._make_grid()

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *map(int, keys)]))

    def _levels(self, p) -> list:
        k = self.grid_points
        if p.type == "categorical":
            return list(p.values)
        if p.type == "integer":
            if p.high - p.low + 1 <= k:
                return list(range(int(p.low), int(p.high) + 1))
            vals = np.geomspace(p.low, p.high, k) if p.prior == "log-uniform" else np.linspace(p.low, p.high, k)
            return sorted({int(round(v)) for v in vals})
        vals = np.geomspace(p.low, p.high, k) if p.prior == "log-uniform" else np.linspace(p.low, p.high, k)
        return [float(v) for v in vals]

    def _make_grid(self) -> list[list]:
        levels = [self._levels(p) for p in self.space.params]
        size = math.prod(len(v) for v in levels)
        if size > MAX_GRID:
            raise ConfigError(
                f"optimizer.grid_points: the grid would have {size} points (more than {MAX_GRID}); "
                "lower grid_points or use sobol/lhs/random"
            )
        grid = [list(p) for p in itertools.product(*levels)]
        order = self._rng(0).permutation(len(grid))
        return [grid[i] for i in order]

    def ask(self, n: int, pending: Sequence[Sequence] | None = None) -> list[list]:
        """The next ``n`` points of the design; ``pending`` points (proposed, not yet told)
        count as drawn: the sequence continues after them and they are not repeated."""
        if pending:
            pending = [[p.coerce(v) for p, v in zip(self.space.params, pt)] for pt in pending]
            self.seen += pending
            self.cursor += len(pending)
            self.n_pending = len(pending)
        n = int(n)
        if self.kind == "grid":
            assert self._grid is not None
            keys = {_key(p) for p in self.seen}
            return [list(p) for p in self._grid if _key(p) not in keys][:n]
        d = len(self.space)
        if self.kind == "sobol":
            from scipy.stats import qmc

            sob = qmc.Sobol(d, scramble=True, seed=self._rng(0))
            if self.cursor:
                sob.fast_forward(self.cursor)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The balance properties of Sobol")
                u = sob.random(n)
        elif self.kind == "lhs":
            from scipy.stats import qmc

            u = qmc.LatinHypercube(d, seed=self._rng(1, self.cursor)).random(n)
        else:
            u = self._rng(2, self.cursor).random((n, d))
        return dedupe(self.box.from_unit(u), self.seen, self.space, self._rng(3, self.cursor))

    def tell(
        self,
        points: Sequence[Sequence],
        losses: Sequence[float],
        failed: Sequence[bool] | None = None,
        prior: bool = False,
    ) -> None:
        points = [[p.coerce(v) for p, v in zip(self.space.params, pt)] for pt in points]
        self.seen += points
        if prior:
            self.n_priors += len(points)
        else:
            self.cursor += len(points)

    def state(self) -> dict:
        out = {
            "kind": self.kind,
            "seed": self.seed,
            "n_told": self.cursor - self.n_pending,
            "n_priors": self.n_priors,
            "n_pending": self.n_pending,
        }
        if self._grid is not None:
            keys = {_key(p) for p in self.seen}
            out["grid_size"] = len(self._grid)
            out["grid_points_left"] = sum(_key(p) not in keys for p in self._grid)
        return out
