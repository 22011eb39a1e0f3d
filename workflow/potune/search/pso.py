"""The particle swarm of the PPSO paper, one particle per trial of a batch."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .protocol import _finite_or_none, _same, _told_losses
from .space import Space

BOUNDARIES = ("redraw", "clip", "reflect")


class Box:
    """Internal continuous coordinates of a space, shared by PSO and the designs.

    - real: the value (uniform prior) or its natural log (log-uniform); box [low, high]
      (in log for log-uniform);
    - integer: as real, box [low - 0.5, high + 0.5], decoded by rounding to the nearest
      integer, so that a uniform draw in the box gives every integer the same chance;
    - categorical: the index of the value, box [-0.5, K - 0.5], decoded by rounding.
    """

    def __init__(self, space: Space):
        self.space = space
        lo, hi = [], []
        for p in space.params:
            if p.type == "categorical":
                a, b = -0.5, len(p.values) - 0.5
            else:
                a, b = (p.low - 0.5, p.high + 0.5) if p.type == "integer" else (p.low, p.high)
                if p.prior == "log-uniform":
                    a, b = math.log(a), math.log(b)
            lo.append(float(a))
            hi.append(float(b))
        self.lo = np.array(lo)
        self.hi = np.array(hi)

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    def decode(self, x: Sequence[float]) -> list:
        """A point (values in the space's order) from internal coordinates."""
        out: list = []
        for p, v in zip(self.space.params, x):
            v = float(v)
            if p.type == "categorical":
                out.append(p.values[int(min(max(math.floor(v + 0.5), 0), len(p.values) - 1))])
                continue
            if p.prior == "log-uniform":
                v = math.exp(v)
            if p.type == "integer":
                out.append(int(min(max(math.floor(v + 0.5), p.low), p.high)))
            else:
                out.append(float(min(max(v, p.low), p.high)))
        return out

    def encode(self, point: Sequence) -> np.ndarray:
        """Internal coordinates of a point (inverse of :meth:`decode` on the decoded values)."""
        out = []
        for p, v in zip(self.space.params, point):
            if p.type == "categorical":
                out.append(float(list(map(str, p.values)).index(str(p.coerce(v)))))
            else:
                out.append(math.log(float(v)) if p.prior == "log-uniform" else float(v))
        return np.array(out)

    def from_unit(self, u: np.ndarray) -> list[list]:
        """Points from rows of the unit cube (uniform in the box)."""
        return [self.decode(self.lo + row * self.width) for row in np.atleast_2d(u)]


class PSOOptimizer:
    """Particle swarm optimisation as in PPSO (Kondati Natarajan & Caro, 2020), one
    particle per trial: the swarm size is the batch size, one generation per iteration.

    In internal coordinates ``x`` (see :class:`Box`) with bounds ``x_min``, ``x_max``:

    - eq. 14, initial positions: ``x = x_min + R (x_max - x_min)``, ``R`` uniform in [0, 1);
      velocities 0;
    - eq. 15, velocity: ``v = w v + C1 R1 (x_local_best - x) / dt + C2 R2 (x_global_best - x) / dt``
      with fresh uniform ``R1``, ``R2`` per particle and dimension (``w = 0`` is the paper);
    - eq. 16, position: ``x <- x + v dt``.

    A coordinate that leaves the box is handled by ``boundary``: ``redraw`` (uniformly inside
    the box, what PPSO's code does; velocity component set to 0), ``clip`` (to the bound;
    velocity 0) or ``reflect`` (mirrored at the bound; velocity reversed).

    Departures from PPSO's code, on purpose: the global best is the best loss seen over the
    whole search (PPSO's code takes the best of the current generation); a failed trial
    counts as +inf, and a term whose best is still +inf (nothing finite yet) is left out;
    a particle whose decoded point repeats a point already evaluated or proposed (the
    global-best particle stands still when ``w = 0``; integer and categorical dimensions
    collide) is redrawn by eq. 14 with velocity 0, so that no fit is wasted. Priors only
    set the global best. Every draw of generation ``g`` comes from a generator seeded by
    ``(seed, g)``, so a replay of the trial table rebuilds the swarm exactly.
    """

    kind = "pso"

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        swarm_size: int = 4,
        c1: float = 1.0,
        c2: float = 2.0,
        dt: float = 1.0,
        inertia: float = 0.0,
        boundary: str = "redraw",
    ):
        if boundary not in BOUNDARIES:
            raise ConfigError(f"optimizer.pso.boundary: {boundary!r} is not one of {', '.join(BOUNDARIES)}")
        if not dt > 0:
            raise ConfigError(f"optimizer.pso.dt: must be > 0, got {dt}")
        if c1 < 0 or c2 < 0:
            raise ConfigError(f"optimizer.pso.c1/c2: must be >= 0, got c1 = {c1}, c2 = {c2}")
        if int(swarm_size) < 1:
            raise ConfigError(f"optimizer.batch_size: the swarm needs at least one particle, got {swarm_size}")
        self.space = space
        self.box = Box(space)
        self.seed = int(seed)
        self.n = int(swarm_size)
        self.c1, self.c2, self.dt, self.inertia = float(c1), float(c2), float(dt), float(inertia)
        self.boundary = boundary
        self.generation = 0
        self.x: np.ndarray | None = None
        self.v = np.zeros((self.n, len(space)))
        self.pbest_x = np.zeros((self.n, len(space)))
        self.pbest_loss = np.full(self.n, math.inf)
        self.gbest_x: np.ndarray | None = None
        self.gbest_loss = math.inf
        self.seen: list[list] = []
        self.n_told = 0
        self.n_priors = 0
        self.n_redrawn_duplicates = 0
        self.n_out_of_box = 0

    # -- randomness: one generator per generation, from the seed only
    def _rng(self, generation: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, int(generation)]))

    def _init_swarm(self) -> None:
        rng = self._rng(0)
        r = rng.random((self.n, len(self.space)))
        self.x = self.box.lo + r * self.box.width  # eq. 14
        self.v = np.zeros_like(self.x)
        self.pbest_x = self.x.copy()
        self._redraw_duplicates(rng)

    def _ensure_swarm(self) -> np.ndarray:
        if self.x is None:
            self._init_swarm()
        assert self.x is not None
        return self.x

    def _redraw_duplicates(self, rng: np.random.Generator) -> None:
        """Redraw (eq. 14, velocity 0) every particle whose point repeats an evaluated point
        or an earlier particle of the same batch."""
        assert self.x is not None
        batch: list[list] = []
        for i in range(self.n):
            p = self.box.decode(self.x[i])
            tries = 0
            while any(_same(p, q) for q in self.seen + batch) and tries < 100:
                self.x[i] = self.box.lo + rng.random(len(self.space)) * self.box.width
                self.v[i] = 0.0
                p = self.box.decode(self.x[i])
                tries += 1
            self.n_redrawn_duplicates += int(tries > 0)
            batch.append(p)

    def _handle_boundary(self, rng: np.random.Generator) -> None:
        assert self.x is not None
        lo, hi = self.box.lo, self.box.hi
        for i in range(self.n):
            for j in range(len(self.space)):
                xv = self.x[i, j]
                if lo[j] <= xv <= hi[j]:
                    continue
                self.n_out_of_box += 1
                if self.boundary == "redraw":
                    self.x[i, j] = lo[j] + rng.random() * (hi[j] - lo[j])
                    self.v[i, j] = 0.0
                elif self.boundary == "clip":
                    self.x[i, j] = min(max(xv, lo[j]), hi[j])
                    self.v[i, j] = 0.0
                else:  # reflect: fold into the box (period 2 L handles a jump past both walls)
                    length = hi[j] - lo[j]
                    y = (xv - lo[j]) % (2 * length)
                    self.x[i, j] = lo[j] + (y if y <= length else 2 * length - y)
                    self.v[i, j] = -self.v[i, j]

    def _move(self) -> None:
        """Eqs. 15 and 16 for generation ``generation + 1``, then boundary and duplicates."""
        assert self.x is not None
        rng = self._rng(self.generation + 1)
        d = len(self.space)
        r1 = rng.random((self.n, d))
        r2 = rng.random((self.n, d))
        cognitive = np.where(np.isfinite(self.pbest_loss)[:, None], self.pbest_x - self.x, 0.0)
        social = (self.gbest_x - self.x) if (self.gbest_x is not None and math.isfinite(self.gbest_loss)) else 0.0
        self.v = self.inertia * self.v + self.c1 * r1 * cognitive / self.dt + self.c2 * r2 * social / self.dt  # eq. 15
        self.x = self.x + self.v * self.dt  # eq. 16
        self._handle_boundary(rng)
        self._redraw_duplicates(rng)

    def ask(self, n: int, pending: Sequence[Sequence] | None = None) -> list[list]:
        if pending:
            raise ConfigError(
                "optimizer.lookahead: pso moves a generation by the losses of the previous one; use lookahead 0"
            )
        if int(n) != self.n:
            raise ValueError(f"pso: the swarm has {self.n} particles (optimizer.batch_size) but {n} points were asked")
        return [self.box.decode(xi) for xi in self._ensure_swarm()]

    def tell(
        self,
        points: Sequence[Sequence],
        losses: Sequence[float],
        failed: Sequence[bool] | None = None,
        prior: bool = False,
    ) -> None:
        """Tell one generation (``len(points)`` = swarm size, particle ``k`` = trial ``k``),
        or trials of an earlier search (``prior=True``: they may only set the global best)."""
        points = [[p.coerce(v) for p, v in zip(self.space.params, pt)] for pt in points]
        y = _told_losses(losses, failed)
        if prior:
            for pt, loss in zip(points, y):
                if loss < self.gbest_loss:
                    self.gbest_loss, self.gbest_x = float(loss), self.box.encode(pt)
            self.seen += points
            self.n_priors += len(points)
            return
        x = self._ensure_swarm()
        if len(points) != self.n:
            raise ValueError(
                f"pso: generation {self.generation} has {len(points)} trial(s) but the swarm has {self.n} particles; "
                "a PSO search cannot go on with a different optimizer.batch_size"
            )
        if not all(_same(p, self.box.decode(xi)) for p, xi in zip(points, x)):
            warnings.warn(
                f"pso: the trials of generation {self.generation} are not where the swarm put them "
                "(were optimizer settings or the seed changed?); the swarm goes on from the trials' points"
            )
            self.x = np.array([self.box.encode(p) for p in points])
        self.seen += points
        self.n_told += len(points)
        better = y < self.pbest_loss
        self.pbest_loss = np.where(better, y, self.pbest_loss)
        self.pbest_x = np.where(better[:, None], self.x, self.pbest_x)
        i = int(np.argmin(y))
        if y[i] < self.gbest_loss:
            self.gbest_loss, self.gbest_x = float(y[i]), self.x[i].copy()
        self._move()
        self.generation += 1

    def state(self) -> dict:
        x = self._ensure_swarm()
        names = self.space.names
        return {
            "kind": "pso",
            "generation": self.generation,
            "settings": {
                "swarm_size": self.n,
                "c1": self.c1,
                "c2": self.c2,
                "dt": self.dt,
                "inertia": self.inertia,
                "boundary": self.boundary,
                "seed": self.seed,
            },
            "coordinates": "x and velocity are internal coordinates: log for log-uniform, index for categorical",
            "n_told": self.n_told,
            "n_priors": self.n_priors,
            "out_of_box_coordinates": self.n_out_of_box,
            "redrawn_duplicates": self.n_redrawn_duplicates,
            "global_best": None
            if self.gbest_x is None
            else {
                "loss": _finite_or_none(self.gbest_loss),
                "point": dict(zip(names, self.box.decode(self.gbest_x))),
            },
            "particles": [
                {
                    "particle": i,
                    "point": dict(zip(names, self.box.decode(x[i]))),
                    "x": [float(v) for v in x[i]],
                    "velocity": [float(v) for v in self.v[i]],
                    "best_loss": _finite_or_none(self.pbest_loss[i]),
                    "best_point": dict(zip(names, self.box.decode(self.pbest_x[i])))
                    if math.isfinite(self.pbest_loss[i])
                    else None,
                }
                for i in range(self.n)
            ],
        }
