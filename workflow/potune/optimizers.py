"""Optimisers behind one ask/tell interface, modelled on scikit-optimize's ``Optimizer``.

Every optimiser takes a :class:`~potune.space.Space` and a seed, and offers

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
    scikit-optimize Bayesian optimisation, batches by constant liar (:class:`BayesOptimizer`).
``pso``
    particle swarm of the PPSO paper, one particle per trial of a batch (:class:`PSOOptimizer`).
``sobol``, ``lhs``, ``random``, ``grid``
    designs of experiments that ignore the losses (:class:`DesignOptimizer`), the offline
    path of the PPSO paper; a baseline, or a start for another search (``priors``).
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Callable, Protocol, Sequence

import numpy as np

from .errors import ConfigError
from .space import Space

ESTIMATORS = ("GP", "RF", "ET")
ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")
INITIAL_DESIGNS = ("sobol", "lhs", "halton", "hammersly", "random")
LIARS = ("cl_min", "cl_mean", "cl_max")
BOUNDARIES = ("redraw", "clip", "reflect")
DESIGNS = ("sobol", "lhs", "random", "grid")
#: grids larger than this are refused (a typo in grid_points should not allocate gigabytes)
MAX_GRID = 100_000


class AskTell(Protocol):
    def ask(self, n: int) -> list[list]: ...

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

        self.check_options(base_estimator, acq_func, initial_design, liar)
        self.space = space
        self.liar = liar
        self.rng = np.random.default_rng(seed)
        self.seen: list[list] = []
        self.n_told = 0
        self._buf_x: list[list] = []
        self._buf_y: list[float] = []
        with warnings.catch_warnings():  # the initial design is generated here
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            self.opt = Optimizer(
                space.to_skopt().dimensions,
                base_estimator=base_estimator,
                n_initial_points=max(1, int(n_initial)),
                initial_point_generator=initial_design,
                acq_func=acq_func,
                random_state=int(seed),
            )

    @staticmethod
    def check_options(base_estimator: str, acq_func: str, initial_design: str, liar: str) -> None:
        """Raise :class:`ConfigError` for a choice skopt lacks or that is broken (without
        importing skopt, so that checking a configuration stays fast)."""
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

    def tell(
        self,
        points: Sequence[Sequence],
        losses: Sequence[float],
        failed: Sequence[bool] | None = None,
        prior: bool = False,
    ) -> None:
        """Record evaluated points. They reach the surrogate at the next ``ask``, in one
        skopt ``tell`` (one model fit however many iterations were replayed).

        Failed trials arrive with the failure penalty as their loss and are told as such;
        priors are told like any other trial (they use up the initial design)."""
        points = [list(p) for p in points]
        self._buf_x += points
        self._buf_y += [float(v) for v in losses]
        self.seen += points
        self.n_told += len(points)

    def ask(self, n: int) -> list[list]:
        """``n`` points: for ``n = 1`` the model's next point; otherwise a constant-liar batch.

        skopt's batch ask refits the model on a copy of the optimiser, so for ``n > 1`` the
        told points are recorded without a fit of their own (one model fit and acquisition
        optimisation fewer per iteration), and for ``n = 1`` the point that skopt's
        ``tell`` computes is used directly (one fit per iteration instead of three).
        """
        n = int(n)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            warnings.filterwarnings("ignore", message="The objective has been evaluated at point")
            if self._buf_x:
                self.opt.tell(self._buf_x, self._buf_y, fit=(n == 1))
                self._buf_x, self._buf_y = [], []
            pts = [self.opt.ask()] if n == 1 else self.opt.ask(n_points=n, strategy=self.liar)
        return dedupe(pts, self.seen, self.space, self.rng)

    def state(self) -> dict:
        return {
            "kind": "bayes",
            "n_told": self.n_told,
            "initial_points_left": max(0, int(self.opt._n_initial_points)),
            "best_loss": float(min(self.opt.yi + self._buf_y)) if (self.opt.yi or self._buf_y) else None,
        }


def _told_losses(losses: Sequence[float], failed: Sequence[bool] | None) -> np.ndarray:
    """Losses as floats, with failed trials and non-finite losses as +inf."""
    out = np.array([float(v) if v is not None else math.inf for v in losses], dtype=float)
    if failed is not None:
        out[np.asarray(failed, dtype=bool)] = math.inf
    out[~np.isfinite(out)] = math.inf
    return out


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


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

    def ask(self, n: int) -> list[list]:
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
            "settings": {"swarm_size": self.n, "c1": self.c1, "c2": self.c2, "dt": self.dt,
                         "inertia": self.inertia, "boundary": self.boundary, "seed": self.seed},
            "coordinates": "x and velocity are internal coordinates: log for log-uniform, index for categorical",
            "n_told": self.n_told,
            "n_priors": self.n_priors,
            "out_of_box_coordinates": self.n_out_of_box,
            "redrawn_duplicates": self.n_redrawn_duplicates,
            "global_best": None if self.gbest_x is None else {
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
                    if math.isfinite(self.pbest_loss[i]) else None,
                }
                for i in range(self.n)
            ],
        }


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

    def ask(self, n: int) -> list[list]:
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
        out = {"kind": self.kind, "seed": self.seed, "n_told": self.cursor, "n_priors": self.n_priors}
        if self._grid is not None:
            keys = {_key(p) for p in self.seen}
            out["grid_size"] = len(self._grid)
            out["grid_points_left"] = sum(_key(p) not in keys for p in self._grid)
        return out


def _key(point: Sequence) -> tuple:
    """A hashable key of a point, tolerant of float round trips through CSV."""
    return tuple(float(f"{v:.10g}") if isinstance(v, float) else str(v) if not isinstance(v, int) else v for v in point)


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
    if kind == "bayes" and REGISTRY.get("bayes") is _make_bayes:
        BayesOptimizer.check_options(cfg.get("base_estimator", "GP"), cfg.get("acq_func", "gp_hedge"),
                                     cfg.get("initial_design", "sobol"), cfg.get("liar", "cl_min"))
        return
    make_optimizer(space, cfg)
