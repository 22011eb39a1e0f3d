"""Bayesian optimisation through scikit-optimize's ``Optimizer``, batches by constant liar."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .protocol import dedupe
from .space import Space

ESTIMATORS = ("GP", "RF", "ET")


ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")


INITIAL_DESIGNS = ("sobol", "lhs", "halton", "hammersly", "random")


LIARS = ("cl_min", "cl_mean", "cl_max")


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
            raise ConfigError(
                f"optimizer.initial_design: {initial_design!r} is not one of {', '.join(INITIAL_DESIGNS)}"
            )
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
