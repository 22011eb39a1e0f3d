"""Bayesian optimisation through scikit-optimize's ``Optimizer``: batches by constant liar,
Kriging believer or local penalisation; gp_hedge's gains rebuilt from the trial table."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from .protocol import dedupe
from .space import Space

ESTIMATORS = ("GP", "RF", "ET")
ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")
INITIAL_DESIGNS = ("sobol", "lhs", "halton", "hammersly", "random")
#: pending-point strategies of a bayes batch (optimizer.liar): skopt's constant liars,
#: Kriging believer, local penalisation (the last two need a GP)
LIARS = ("cl_min", "cl_mean", "cl_max", "kb", "lp")
GP_LIARS = ("kb", "lp")
#: optimizer.liar when unset (null): chosen by benchmarks/optimisers.py (see benchmarks/README.md);
#: tree ensembles (RF, ET) have no GP posterior to condition, they take FALLBACK_LIAR
DEFAULT_LIAR, FALLBACK_LIAR = "kb", "cl_min"


def resolve_liar(liar: str | None, base_estimator: str = "GP") -> str:
    """``liar`` as configured, or for ``None`` the default for ``base_estimator``."""
    if liar is None:
        return DEFAULT_LIAR if base_estimator == "GP" else FALLBACK_LIAR
    return liar


#: gp_hedge's portfolio, in skopt's order
HEDGE_ACQS = ("EI", "LCB", "PI")
#: gp_hedge: most recent model iterations whose nominees count towards the gains (GP; tree ensembles)
HEDGE_WINDOW = 64
HEDGE_WINDOW_TREES = 16
#: gp_hedge: seeded random points among which each acquisition's nominee is chosen (replay)
HEDGE_CANDIDATES = 512
#: log_loss: losses below this are modelled as log(LOG_LOSS_FLOOR)
LOG_LOSS_FLOOR = 1e-12
#: gp_hedge: softmax temperature on the gains (skopt's eta); gains are in standard deviations of the losses
HEDGE_ETA = 1.0
#: skopt's defaults for EI/PI (xi) and LCB (kappa)
ACQ_XI, ACQ_KAPPA = 0.01, 1.96
#: kb/lp acquisition optimiser: random points, Gaussian steps around the best trials, L-BFGS-B restarts
ACQ_SAMPLES, ACQ_LOCAL, ACQ_RESTARTS = 2000, 500, 3


class _Posterior:
    """Posterior of a Gaussian process with fixed hyperparameters: the kernel, noise and
    output scaling of ``est`` (a fitted skopt ``GaussianProcessRegressor``), conditioned on
    ``X`` (transformed coordinates) and ``y``. One Cholesky factorisation, no hyperparameter
    fit: what the Kriging believer, local penalisation and the gp_hedge replay use."""

    def __init__(self, est, X: np.ndarray, y: np.ndarray):
        from scipy.linalg import cho_factor, cho_solve

        self.kernel = est.kernel_
        self.ym = float(np.ravel(est.y_train_mean_)[0])
        self.ys = float(np.ravel(est.y_train_std_)[0]) or 1.0
        self.X = np.asarray(X, dtype=float)
        noise = float(getattr(est, "noise_", None) or 0.0) + float(np.mean(np.atleast_1d(est.alpha)))
        K = self.kernel(self.X)
        K[np.diag_indices_from(K)] += noise + 1e-10
        self.cho = cho_factor(K, lower=True)
        self.a = cho_solve(self.cho, (np.asarray(y, dtype=float) - self.ym) / self.ys)

    def predict(self, Z: np.ndarray, return_std: bool = True):
        from scipy.linalg import solve_triangular

        Z = np.atleast_2d(np.asarray(Z, dtype=float))
        Ks = self.kernel(Z, self.X)
        mu = Ks @ self.a * self.ys + self.ym
        if not return_std:
            return mu
        v = solve_triangular(self.cho[0], Ks.T, lower=True)
        var = self.kernel.diag(Z) - np.einsum("ij,ij->j", v, v)
        return mu, np.sqrt(np.maximum(var, 1e-18)) * self.ys


class _Refit:
    """The same interface for a tree ensemble (RF, ET): a fresh fit on ``X``, ``y``."""

    def __init__(self, est, X: np.ndarray, y: np.ndarray):
        from sklearn.base import clone

        self.est = clone(est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.est.fit(X, y)

    def predict(self, Z: np.ndarray, return_std: bool = True):
        return self.est.predict(np.atleast_2d(Z), return_std=True) if return_std else self.est.predict(np.atleast_2d(Z))


def _utility(acq: str, mu: np.ndarray, sd: np.ndarray, y_opt: float) -> np.ndarray:
    """Acquisition to maximise, skopt's definitions and defaults (xi = 0.01, kappa = 1.96):
    EI and PI (>= 0), and LCB as ``-(mu - kappa sd)``."""
    from scipy.stats import norm

    if acq == "LCB":
        return -(mu - ACQ_KAPPA * sd)
    imp = y_opt - mu - ACQ_XI
    z = imp / sd
    if acq == "EI":
        return imp * norm.cdf(z) + sd * norm.pdf(z)
    return norm.cdf(z)


class BayesOptimizer:
    """scikit-optimize Bayesian optimisation with batch proposals.

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
        ``None`` (the default): ``kb`` with a GP, ``cl_min`` with RF or ET. How a batch
        treats its pending points (the points already chosen for the batch,
        not evaluated yet):

        - ``cl_min``, ``cl_mean``, ``cl_max``: skopt's constant liar (the pending point is
          told the min/mean/max of the losses seen; the model is refitted after each lie);
        - ``kb``: Kriging believer: the GP is conditioned (hyperparameters fixed) on its own
          posterior mean at the pending points, so the mean is unchanged and the variance
          collapses around them (for LCB this is GP-BUCB); GP only;
        - ``lp``: local penalisation (González et al., AISTATS 2016): the acquisition of the
          model told only the real trials is multiplied by, for every pending point
          ``x_j``, the probability that ``x`` lies outside the ball around ``x_j`` that
          cannot hold the minimum, radius ``(mu(x_j) - min y) / L`` with ``L`` the largest
          gradient norm of the posterior mean; GP only.

        In every case the first point of a batch is the one sequential search would pick.
    log_loss
        Model ``log(loss)`` instead of the loss (losses must be positive; they are floored at
        :data:`LOG_LOSS_FLOOR`). The minimiser is the same; a GP on the logarithm is not
        dominated by the few trials whose loss is orders of magnitude above the rest (a
        poor descriptor or a diverged fit), which a GP on the raw loss fits at the expense of
        the region of good trials. Liars, hedge gains and ``best_loss`` follow (the last in
        loss units).

    gp_hedge under replay
        skopt keeps the portfolio's gains in the optimiser, updated in ``tell`` from the
        nominees of the previous ``ask``. The workflow rebuilds the optimiser at every
        iteration, which would reset the gains to zero (a uniform random choice among EI,
        LCB, PI). Here the gains are recomputed from the trial table at each ``ask``: for
        each of the last :data:`HEDGE_WINDOW` model iterations (one ``tell`` = one
        iteration), the nominee of each acquisition is its best point among
        :data:`HEDGE_CANDIDATES` seeded random points under the model of the trials before
        that iteration, and its reward is the mean at the nominee of the model that also
        knows that iteration's trials (GP-Hedge, Hoffman et al. 2011; skopt's update).
        Models use the current kernel hyperparameters (one Cholesky per iteration, no fit);
        rewards are in units of the standard deviation of the losses (scale-free). The
        result depends only on the configuration, the seed and the table.
    """

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_initial: int = 4,
        initial_design: str = "sobol",
        base_estimator: str = "GP",
        acq_func: str = "gp_hedge",
        liar: str | None = None,
        log_loss: bool = False,
    ):
        from skopt import Optimizer

        liar = resolve_liar(liar, base_estimator)
        self.check_options(base_estimator, acq_func, initial_design, liar)
        self.space = space
        self.seed = int(seed)
        self.liar = liar
        self.acq_func = acq_func
        self.log_loss = bool(log_loss)
        self.rng = np.random.default_rng(seed)
        self.seen: list[list] = []
        self.n_told = 0
        self.n_initial = max(1, int(n_initial))
        self._buf_x: list[list] = []
        self._buf_y: list[float] = []
        self._groups: list[int] = []  # trials told at each tell (one tell = one iteration)
        self._hedge: dict | None = None
        with warnings.catch_warnings():  # the initial design is generated here
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            self.opt = Optimizer(
                space.to_skopt().dimensions,
                base_estimator=base_estimator,
                n_initial_points=self.n_initial,
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
        if liar in GP_LIARS and base_estimator != "GP":
            raise ConfigError(
                f"optimizer.liar: {liar} needs base_estimator GP (got {base_estimator}); use cl_min, cl_mean or cl_max"
            )

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
        priors are told like any other trial (they use up the initial design). Each call is
        one iteration for the gp_hedge gains."""
        points = [list(p) for p in points]
        if not points:
            return
        self._buf_x += points
        self._buf_y += [self._model_y(v) for v in losses]
        self.seen += points
        self.n_told += len(points)
        self._groups.append(len(points))

    # ------------------------------------------------------------------ helpers
    def _model_y(self, loss: float) -> float:
        """The value the surrogate models for ``loss``: the loss, or its logarithm."""
        loss = float(loss)
        return float(np.log(max(loss, LOG_LOSS_FLOOR))) if self.log_loss else loss

    def _rng_for(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *map(int, keys)]))

    def _hedge_gains(self, est) -> tuple[np.ndarray, int]:
        """GP-Hedge gains of EI, LCB, PI (skopt's order), recomputed from the trials told
        (see the class docstring); and the number of iterations counted."""
        sp = self.opt.space
        X = sp.transform(self.opt.Xi)
        y = np.asarray(self.opt.yi, dtype=float)
        scale = float(np.std(y)) or 1.0
        ends = np.cumsum(self._groups)
        starts = ends - np.asarray(self._groups)
        spans = [(int(s), int(e)) for s, e in zip(starts, ends) if s >= self.n_initial]
        is_gp = hasattr(est, "kernel_")
        spans = spans[-(HEDGE_WINDOW if is_gp else HEDGE_WINDOW_TREES) :]
        model = (lambda n: _Posterior(est, X[:n], y[:n])) if is_gp else (lambda n: _Refit(est, X[:n], y[:n]))
        gains = np.zeros(len(HEDGE_ACQS))
        cache: dict[int, object] = {}
        for s, e in spans:
            before = cache.pop(s, None) or model(s)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                S = sp.transform(sp.rvs(HEDGE_CANDIDATES, random_state=int(self._rng_for(17, s).integers(2**31 - 1))))
            mu, sd = before.predict(S)
            noms = np.vstack([S[int(np.argmax(_utility(a, mu, sd, float(y[:s].min()))))] for a in HEDGE_ACQS])
            after = cache[e] = model(e)
            gains -= (after.predict(noms, return_std=False) - float(np.mean(y))) / scale
        return gains, len(spans)

    def _acq_picker(self, est, rng: np.random.Generator) -> Callable[[], str]:
        """A function that names the acquisition of the next point: ``acq_func``, or for
        gp_hedge a draw from the softmax of the gains (recorded for :meth:`state`)."""
        if self.acq_func != "gp_hedge":
            return lambda: self.acq_func
        gains, counted = self._hedge_gains(est)
        logits = HEDGE_ETA * (gains - gains.max())
        probs = np.exp(logits) / np.exp(logits).sum()
        self._hedge = {
            "iterations_counted": counted,
            "gains": {a: float(g) for a, g in zip(HEDGE_ACQS, gains)},
            "probabilities": {a: float(p) for a, p in zip(HEDGE_ACQS, probs)},
            "picked": [],
        }

        def pick() -> str:
            a = HEDGE_ACQS[int(rng.choice(len(HEDGE_ACQS), p=probs))]
            self._hedge["picked"].append(a)
            return a

        return pick

    def _skopt_next(self, pick: Callable[[], str]) -> list:
        """The point skopt's last fit nominated for the picked acquisition (skopt's own
        acquisition optimiser; duplicates of told points are avoided as in skopt)."""
        opt = self.opt
        if self.acq_func == "gp_hedge":
            nom = opt.next_xs_[HEDGE_ACQS.index(pick())]
            opt._next_x = opt.space.inverse_transform(nom.reshape((1, -1)))[0]
        return opt.ask()

    def _maximise(
        self, f: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator, anchors: np.ndarray
    ) -> np.ndarray:
        """Maximise ``f`` over the transformed space: the best of seeded random points and
        of Gaussian steps around ``anchors``, polished by L-BFGS-B from the best few."""
        from scipy.optimize import fmin_l_bfgs_b

        sp = self.opt.space
        bounds = np.array(sp.transformed_bounds, dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Z = sp.transform(sp.rvs(ACQ_SAMPLES, random_state=int(rng.integers(2**31 - 1))))
        if len(anchors):
            steps = anchors[rng.integers(len(anchors), size=ACQ_LOCAL)]
            local = steps + rng.normal(0.0, 0.05, steps.shape) * (bounds[:, 1] - bounds[:, 0])
            Z = np.vstack([Z, np.clip(local, bounds[:, 0], bounds[:, 1])])
        vals = f(Z)
        order = np.argsort(-vals)[:ACQ_RESTARTS]
        best, best_v = Z[order[0]], float(vals[order[0]])
        if not sp.is_categorical:
            for z0 in Z[order]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    z, v, _ = fmin_l_bfgs_b(
                        lambda z: -float(f(z[None, :])[0]), z0, bounds=bounds, approx_grad=True, maxiter=20
                    )
                if -v > best_v:
                    best, best_v = np.clip(z, bounds[:, 0], bounds[:, 1]), -float(v)
        return best

    def _pending_batch(self, n: int, fitted: bool, pending: list[list] | None = None) -> list[list]:
        """A batch by Kriging believer (``kb``) or local penalisation (``lp``); ``pending``
        points (proposed earlier, losses not known yet) are believed/penalised like the
        batch's own and use up the initial design first."""
        pending = pending or []
        from sklearn.base import clone

        opt, sp = self.opt, self.opt.space
        rng = self._rng_for(23, self.n_told)
        pts = self._design_after(pending, n, rng)  # the rest of the initial design first, then model points
        if len(pts) == n:
            return pts
        if not opt.yi:  # nothing told yet and a batch larger than the design: random points
            return pts + sp.rvs(n - len(pts), random_state=int(rng.integers(2**31 - 1)))
        if fitted:
            est = opt.models[-1]
        else:
            est = clone(opt.base_estimator_)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(sp.transform(opt.Xi), opt.yi)
        pick = self._acq_picker(est, rng)
        if fitted and not pts and not pending:
            pts.append(self._skopt_next(pick))
        X = sp.transform(opt.Xi)
        y = np.asarray(opt.yi, dtype=float)
        y_opt = float(y.min())
        base = _Posterior(est, X, y)
        anchors = X[np.argsort(y, kind="stable")[:5]]
        taken = pending + pts
        P = sp.transform(taken) if taken else np.zeros((0, X.shape[1]))
        if self.liar == "lp":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                S = sp.transform(sp.rvs(HEDGE_CANDIDATES, random_state=int(rng.integers(2**31 - 1))))
            h = 1e-4
            grads = np.stack(
                [
                    (base.predict(S + h * e, False) - base.predict(S - h * e, False)) / (2 * h)
                    for e in np.eye(S.shape[1])
                ],
                axis=1,
            )
            lip = float(np.max(np.linalg.norm(grads, axis=1)))
            lip = lip if lip > 1e-7 else 10.0
        from scipy.special import log_ndtr

        while len(pts) < n:
            acq = pick()
            if self.liar == "kb":
                post = (
                    _Posterior(est, np.vstack([X, P]), np.concatenate([y, base.predict(P, False)])) if len(P) else base
                )

                def f(Z, post=post, acq=acq):
                    return _utility(acq, *post.predict(Z), y_opt)
            else:
                mu_p, sd_p = base.predict(P) if len(P) else (np.zeros(0), np.zeros(0))
                scale = base.ys

                def f(Z, acq=acq, P=P, mu_p=mu_p, sd_p=sd_p, scale=scale):
                    mu, sd = base.predict(Z)
                    u = _utility(acq, mu, sd, y_opt)
                    if acq == "LCB":  # positive, increasing: softplus of the standardised LCB gain
                        u = np.logaddexp(0.0, (u + y_opt) / scale)
                    elif acq == "EI":
                        u = u / scale
                    out = np.log(np.maximum(u, 1e-300))
                    if len(P):
                        d = np.linalg.norm(Z[:, None, :] - P[None, :, :], axis=2)
                        out = out + log_ndtr((lip * d - mu_p[None, :] + y_opt) / sd_p[None, :]).sum(axis=1)
                    return out

            z = self._maximise(f, rng, anchors)
            x = sp.inverse_transform(z.reshape((1, -1)))[0]
            pts.append(x)
            P = np.vstack([P, sp.transform([x])])
        return pts

    def ask(self, n: int, pending: Sequence[Sequence] | None = None) -> list[list]:
        """``n`` points: for ``n = 1`` the model's next point; otherwise a batch by the
        pending-point strategy ``liar``. ``pending``: points proposed earlier whose losses
        are not known yet (``optimizer.lookahead``); they are treated by the same strategy as
        the batch's own points (``cl_*``: told the lie on a copy of the optimiser).

        With a fixed acquisition, skopt's constant-liar batch refits the model on a copy of
        the optimiser, so the told points are recorded without a fit of their own (one
        model fit and acquisition optimisation fewer per iteration). For ``n = 1``, for
        gp_hedge (whose gains need the fitted kernel) and for ``kb``/``lp`` the told points
        are fitted once and the first point is the one skopt's fit nominated.
        """
        n = int(n)
        opt = self.opt
        pending = [list(p) for p in (pending or [])]
        own = self.liar in GP_LIARS and (n > 1 or bool(pending))
        will_model = int(opt._n_initial_points) - len(self._buf_x) <= 0
        fit = will_model and (n == 1 or own or self.acq_func == "gp_hedge")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The balance properties of Sobol")
            warnings.filterwarnings("ignore", message="The objective has been evaluated at point")
            if self._buf_x:
                opt.tell(self._buf_x, self._buf_y, fit=fit)
                self._buf_x, self._buf_y = [], []
            fitted = fit and bool(opt.models)
            if own:
                pts = self._pending_batch(n, fitted, pending)
            elif pending:
                pts = self._constant_liar_after(n, pending)
            elif n == 1:
                pick = self._acq_picker(opt.models[-1], self._rng_for(23, self.n_told)) if fitted else None
                pts = [self._skopt_next(pick) if pick else opt.ask()]
            else:
                if fitted and self.acq_func == "gp_hedge":  # the copies of the batch inherit the gains
                    self._acq_picker(opt.models[-1], self._rng_for(23, self.n_told))
                    opt.gains_ = np.array(list(self._hedge["gains"].values()))
                    del self._hedge["picked"]  # drawn inside skopt's copies, not seen here
                pts = opt.ask(n_points=n, strategy=self.liar)
        return dedupe(pts, self.seen + pending, self.space, self.rng)

    def _constant_liar_after(self, n: int, pending: list[list]) -> list[list]:
        """``cl_*`` with pending points: a copy of the optimiser is told them with the lie
        (before any loss is known, they only use up the initial design), then asked."""
        opt = self.opt
        rng = self._rng_for(29, self.n_told)
        if opt.yi:
            c = opt.copy(random_state=int(rng.integers(2**31 - 1)))
            y = np.asarray(opt.yi, dtype=float)
            lie = {"cl_min": y.min(), "cl_mean": y.mean(), "cl_max": y.max()}[self.liar]
            c.tell(pending, [float(lie)] * len(pending))
            return c.ask(n_points=n, strategy=self.liar) if n > 1 else [c.ask()]
        pts = self._design_after(pending, n, rng)
        if len(pts) < n:  # the design is used up and no loss is known yet: random points
            pts += opt.space.rvs(n - len(pts), random_state=int(rng.integers(2**31 - 1)))
        return pts

    def _design_after(self, pending: list[list], n: int, rng: np.random.Generator) -> list[list]:
        """Up to ``n`` points of the rest of the initial design, after ``pending`` points (proposed,
        not yet told) have used up theirs; none once the design is used up."""
        k = min(n, max(0, int(self.opt._n_initial_points) - len(pending)))
        if not k:
            return []
        c = self.opt.copy(random_state=int(rng.integers(2**31 - 1)))
        for x in pending:
            c._tell(x, 0.0, fit=False)
        pts: list[list] = []
        for _ in range(k):
            x = c.ask()
            pts.append(x)
            c._tell(x, 0.0, fit=False)
        return pts

    def state(self) -> dict:
        out = {
            "kind": "bayes",
            "acq_func": self.acq_func,
            "liar": self.liar,
            "n_told": self.n_told,
            "initial_points_left": max(0, int(self.opt._n_initial_points)),
            "log_loss": self.log_loss,
            "best_loss": None,
        }
        if self.opt.yi or self._buf_y:
            best = float(min(self.opt.yi + self._buf_y))
            out["best_loss"] = float(np.exp(best)) if self.log_loss else best
        if self._hedge is not None:
            out["hedge"] = self._hedge
        return out
