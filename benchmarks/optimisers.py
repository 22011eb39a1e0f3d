"""Optimisers on analytic functions: what does batching cost?

Question: at an equal number of evaluations, how much worse is a Bayesian search that
proposes batches of 4 or 8 (run side by side) than a strictly sequential one (XPOT-style),
which pending-point strategy loses least, and how many fewer rounds (iterations of the workflow) does
it need? PSO (PPSO-style, swarm of 8), a Sobol sequence and random search are the baselines.

Every ``bayes``, ``pso`` and design optimiser is driven exactly as the workflow drives it: each round calls
``potune.search.propose`` with the trial table so far (the optimiser is rebuilt and the
table replayed, one ``tell`` per round), evaluates the proposals and appends them to the table.

Functions (minimised; regret = best-so-far − known minimum):

- Branin (2-D, x1 in [-5, 10], x2 in [0, 15], minimum 0.397887),
- Hartmann-6 (6-D, [0, 1]^6, minimum -3.32237),
- Rastrigin-4 (4-D, [-5.12, 5.12]^4, minimum 0; many local minima);
- ``dimer-gap4`` (not run by default: ``--functions dimer-gap4``), a real objective: one GAP
  fit per evaluation, see :class:`DimerGap`. PPSO Table 3 strategy 1 at n_max = l_max = 4
  (:func:`potune.report.paper.ppso_dimer_config`, ``joint``): its 13-D space (10 real, 3
  integer dimensions) searched, ``fixed`` and ``gap`` settings kept; the C-GAP-17 dimers split
  by the workflow's ``split`` step (the config's split seed, the same split for every search);
  the loss is the trial's validation loss Γ_E + Γ_F/30 (``loss.kind: gamma``) as the
  workflow's ``fit``, ``validate`` and ``collect`` steps compute it. Its minimum is unknown:
  regret = loss (f_min = 0), the ``*-log`` variants see the loss itself (no shift). A failed
  fit is a failed trial (loss NaN, status failed: :func:`potune.search.loop.propose` tells it
  the failure penalty; ``skopt-seq`` is told the same penalty) and counts as an evaluation.

Optimisers (equal budget of evaluations each, 8-point Sobol initial design for every
Bayesian one so that only the batching differs):

- ``skopt-seq``: one persistent skopt ``Optimizer`` (GP, gp_hedge), ask/tell one point at a
  time, never rebuilt: what XPOT does, the sequential reference;
- ``bayes-b1``: ours (GP, gp_hedge) through ``propose``, batch 1;
- ``bayes-b<q>-<liar>`` for q = 4, 8 and pending-point strategy ``kb`` (Kriging believer),
  ``lp`` (local penalisation) and ``cl_min`` (skopt's constant liar);
- ``pso`` (swarm 8, C1 = 1, C2 = 2, w = 0, redraw), ``sobol`` and ``random`` (batch 8);
- ``optuna-tpe-b<q>`` (q = 1, 4, 8): Optuna's TPE with ``constant_liar=True``, q trials asked
  before their results are told; optuna is not a dependency of potune, so these are not run
  by default (run them with ``--optimisers optuna-tpe-b1 ...`` from an environment that has
  optuna, numpy and pandas);
- ``optuna-tpe-async-b8`` (``-n16``: 16 start-up trials): the same TPE with 8 trials in flight,
  trial k asked once the results of trials < k - 7 are told (ours' ``lookahead`` 7 conditioning).

Writes ``<out>/optimisers.csv`` (function, optimiser, batch, seed, evaluation, round,
best_so_far, regret, propose_s, value: the evaluation's own loss, status) and ``<out>/optimisers.png`` (median regret over seeds with
the inter-quartile band, against evaluations and against rounds), and prints a summary.

Usage::

    .venv/bin/python benchmarks/optimisers.py            # the full run (see benchmarks/README.md)
    other-venv/bin/python benchmarks/optimisers.py --optimisers optuna-tpe-b1 optuna-tpe-b4 optuna-tpe-b8
    .venv/bin/python benchmarks/optimisers.py --quick    # Branin, 2 seeds, 16 evaluations (< 2 min)
    # one function per process, then one report:
    .venv/bin/python benchmarks/optimisers.py --functions branin --out benchmarks/results/branin
    .venv/bin/python benchmarks/optimisers.py --report benchmarks/results/*/optimisers.csv
    # the real objective (one GAP fit per evaluation, ~3 s each):
    PYTHONPATH=workflow .venv/bin/python benchmarks/optimisers.py --functions dimer-gap4 --budget 24

Results of the reported runs are in benchmarks/README.md (dimer-gap4: benchmarks/optimisers_dimer_gap.csv).
"""

from __future__ import annotations

import os

# one BLAS thread: the GP fits are small, and threads only fight each other (measured 3x slower)
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from contextlib import redirect_stdout  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from potune.search.loop import failure_penalty, propose  # noqa: E402
from potune.search.space import Space  # noqa: E402


# ----------------------------------------------------------------------------- functions
def branin(x: np.ndarray) -> float:
    x1, x2 = x
    b, c, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s)


_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> float:
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (np.asarray(x) - _H6_P) ** 2, axis=1))))


def rastrigin(x: np.ndarray) -> float:
    x = np.asarray(x)
    return float(10 * len(x) + np.sum(x**2 - 10 * np.cos(2 * math.pi * x)))


#: name -> (function, bounds per dimension, known minimum)
FUNCTIONS: dict[str, tuple[Callable[[np.ndarray], float], list[tuple[float, float]], float]] = {
    "branin": (branin, [(-5.0, 10.0), (0.0, 15.0)], 0.397887),
    "hartmann6": (hartmann6, [(0.0, 1.0)] * 6, -3.32237),
    "rastrigin4": (rastrigin, [(-5.12, 5.12)] * 4, 0.0),
}

#: ``*-log`` optimisers (``log_loss: true``) see f - f_min + log_offset(f), a loss whose minimum is
#: LOG_OFFSET_FRACTION of the function's median excess over its minimum on the domain (1024 Sobol points):
#: like a fit's loss, positive, with the best a small fraction of a typical trial's. Branin
#: 3.4, Hartmann-6 0.32, Rastrigin-4 7.4 (computed by :func:`log_offset`).
LOG_OFFSET_FRACTION = 0.1


def log_offset(fname: str) -> float:
    """LOG_OFFSET_FRACTION x the median of f - f_min over 1024 scrambled Sobol points (seed 0)."""
    from scipy.stats import qmc

    fn, bounds, fmin = FUNCTIONS[fname]
    lo, hi = np.array(bounds).T
    xs = qmc.scale(qmc.Sobol(len(bounds), seed=0).random(1024), lo, hi)
    return LOG_OFFSET_FRACTION * float(np.median([fn(x) - fmin for x in xs]))


# ----------------------------------------------------------------------------- a real objective
class DimerGap:
    """PPSO Table 3 strategy 1 at n_max = l_max = ``n`` as a function of its searched
    hyperparameters: one evaluation is one trial of the workflow, run by the workflow's own
    step functions in a temporary folder (deleted afterwards, models included):

    - the configuration: :func:`potune.report.paper.ppso_dimer_config` (``joint``, ``n``)
      resolved by :func:`potune.config.resolve_config`; its ``space`` is the search space,
      ``fixed``, ``gap``, ``loss`` and ``resources.fit`` are used as the workflow uses them;
    - the data: written once per process by :func:`potune.steps.split.split` (rule ``split``,
      the config's ``split`` with its seed), fold 0's train.xyz / valid.xyz;
    - a proposal file as rule ``propose`` writes it, then :func:`potune.steps.fit.fit_step`
      (rule ``fit``: gap_fit under the job's memory and time limits), then
      :func:`potune.steps.validate.validate_step` (rule ``validate``: errors and loss), then
      :func:`potune.trials.trial_row` (rule ``collect``: the trial's table row, ``loss`` and
      ``status``).

    Differences from a workflow run, on purpose: every fit gets the same gap_fit seed
    (:attr:`FIT_SEED`; the workflow draws one per trial), so the objective is a function of
    the hyperparameters alone (the random sparse-point selection is not one more source of
    noise between optimisers); ``fit_step`` runs in this process (gap_fit is a child process
    of it either way), ``validate_step`` in a child process per attempt (:meth:`_validate`)."""

    FIT_SEED = 1

    def __init__(self, n: int = 4):
        self.n = n
        self._tmp = None

    def _setup(self) -> None:
        import tempfile

        from potune.config import resolve_config
        from potune.report.paper import Context, ppso_dimer_config
        from potune.steps.split import split

        self._tmp = tempfile.TemporaryDirectory(prefix=f"potune-dimer-gap{self.n}-")
        root = Path(self._tmp.name)
        ctx = Context(out=root, cores=1, quick=False, shared=None)
        raw = ppso_dimer_config(ctx, "joint", self.n)
        raw["results_dir"] = str(root / "results")  # resolve_config checks it is writable
        self.cfg = resolve_config(raw)
        self.space = Space.from_config(self.cfg["space"])
        fitter = self.cfg["fitter"]
        data = {
            "data": self.cfg["data"],
            "split": self.cfg["split"],
            "require_forces": not self.cfg[fitter].get("energy_only", False) or bool(self.cfg.get("refit_forces")),
        }
        with open(root / "split.log", "w") as fh, redirect_stdout(fh):
            split(data, root / "split")
        self.train = root / "split" / "fold0" / "train.xyz"
        self.valid = root / "split" / "fold0" / "valid.xyz"
        self.count = 0

    def ready(self) -> DimerGap:
        if self._tmp is None:
            self._setup()
        return self

    def default_point(self) -> dict:
        """GAP's default hyperparameters (derived soap_turbo values resolved from ``fixed``)
        clipped into the space: rcut_soft 4 -> 1, atom_sigma_r/t 0.5, n_sparse 1000 -> 40."""
        from potune.fitters.gap import resolve_params

        self.ready()
        d = resolve_params(dict(self.cfg["fixed"]))
        return self.space.to_dict(self.space.clip_point(d, [p.low for p in self.space.params]))

    def evaluate(self, point: dict) -> dict:
        """One trial at ``point`` (``{name: value}``): its table row (``loss``, ``status``,
        ``reason``, errors, ``fit_time_s``)."""
        import shutil

        from potune.cluster.resources import job_mem_mb
        from potune.io import write_yaml
        from potune.steps.fit import fit_step
        from potune.trials import trial_row

        self.ready()
        cfg, fitter = self.cfg, self.cfg["fitter"]
        res = cfg["resources"]
        self.count += 1
        tdir = Path(self._tmp.name) / f"eval{self.count:05d}"
        fold = tdir / "t00" / "fold0"
        fold.mkdir(parents=True)
        params = tdir / "proposals" / "t00.yaml"
        write_yaml(
            params,
            {
                "iteration": 0,
                "trial": "t00",
                "trial_id": f"0-{self.count:05d}",
                "seed": self.FIT_SEED,
                "origin": "optimizer",
                "point": self.space.to_dict(self.space.to_point(point)),
                "fixed": cfg.get("fixed") or {},
            },
        )
        try:
            with open(tdir / "steps.log", "w") as fh, redirect_stdout(fh):
                fit_step(
                    params,
                    self.train,
                    fold / "model",
                    fold / "fit.json",
                    fold / "fit.log",
                    fitter,
                    cfg[fitter],
                    threads=res["fit"]["threads"],
                    mem_mb=job_mem_mb(res["fit"], fitter, cfg[fitter], params, self.train, 1),
                    runtime_min=float(res["fit"]["runtime"]),
                    attempt=1,
                    max_attempts=res["fit"]["retries"] + 2,
                )
            self._validate(fold)
            return trial_row(params, [fold])
        finally:
            shutil.rmtree(tdir, ignore_errors=True)

    def _validate(self, fold: Path) -> None:
        """Rule ``validate`` on one fitted fold, in a process of its own as the workflow runs it
        (soap_turbo keeps its radial basis between GAP models loaded in one process, see
        :func:`potune.descriptors.soap.reset_soap_turbo_basis`: in this process the second
        model predicted wrongly, e.g. loss 20128 instead of 13.3), with its attempts: a process killed
        from outside (or over the rule's runtime) is run again, the last attempt records the
        trial as failed (:func:`potune.steps.validate.validate_step`)."""
        import json
        import os
        import subprocess

        from potune.cluster.resources import job_mem_mb

        cfg, fitter = self.cfg, self.cfg["fitter"]
        res = cfg["resources"]["validate"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")])}
        max_attempts = int(res["retries"]) + 2
        for attempt in range(1, max_attempts + 1):
            args = {
                "fit_file": str(fold / "fit.json"),
                "model_dir": str(fold / "model"),
                "valid_file": str(self.valid),
                "out_file": str(fold / "valid.json"),
                "fitter_name": fitter,
                "loss_cfg": cfg["loss"],
                "predictions_file": str(fold / "valid_predictions.npz"),
                "attempt": attempt,
                "max_attempts": max_attempts,
                "mem_mb": job_mem_mb(res, fitter, cfg[fitter], None, None, attempt),
                "runtime_min": float(res["runtime"]) * attempt,
            }
            with open(fold / "validate.log", "a") as log:
                try:
                    subprocess.run(
                        [sys.executable, "-c", _VALIDATE_CHILD, json.dumps(args)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        timeout=60.0 * args["runtime_min"],
                    )
                except subprocess.TimeoutExpired:
                    log.write(f"# attempt {attempt}: over the rule's runtime, killed\n")
            if (fold / "valid.json").exists():
                return
        raise RuntimeError(f"validate wrote no result in {max_attempts} attempts: see {fold / 'validate.log'}")

    def __call__(self, x: Sequence) -> float:
        """The loss at ``x`` (values in the order of :attr:`space`; integers rounded), NaN for
        a failed trial (its reason goes to stderr)."""
        self.ready()
        row = self.evaluate(self.space.to_dict(x))
        if row["status"] != "ok":
            print(f"dimer-gap{self.n}: failed trial: {str(row['reason'])[:300]}", file=sys.stderr, flush=True)
            return math.nan
        return float(row["loss"])


#: the rule ``validate`` script's call, in a child process (arguments: one JSON object)
_VALIDATE_CHILD = """
import json, sys
from potune.steps.validate import validate_step
validate_step(**json.loads(sys.argv[1]))
"""


class SiQsnapWeights:
    """The weight space of XPOT Table II's Si qSNAP search on descriptors held fixed: one
    evaluation is one least-squares solve on the cached descriptor matrix (a nested search's
    inner trial, :func:`potune.fitters.snap.nested.inner_search`), ~0.5 s at twojmax 6.

    - the configuration: :func:`potune.report.paper.qsnap_zuo_config` for Si, held-out protocol
      (validation on 20 % of each training config_type, as the workflow's ``split`` step deals it),
      ``twojmax`` (default 6), loss alpha 0.75; its per-config_type ``eweight`` (100-15000) and
      ``fweight`` (0.1-500, log-uniform) dimensions are the search space, 8 for Si's 4 config_types;
    - the descriptors: FitSNAP's default rcutfac 4.67637 and rfac0 0.99363 (rmin0 0), computed
      once per process by :func:`potune.fitters.snap.compute_descriptors` on fold 0 (train and
      validation blocks), as rule ``descriptors`` computes them;
    - the loss: :func:`potune.fitters.snap.solve` then
      :func:`potune.fitters.snap.nested.validation_errors` (equal to the LAMMPS validation of
      the fitted model to 1e-6, tests/test_snap_nested.py), as an inner trial scores.

    With an unregularised solve only the ratios of the weights matter, so the 8 dimensions hold 7
    free ratios (a flat direction: the optimisers are not told)."""

    RCUTFAC, RFAC0 = 4.67637, 0.99363

    def __init__(self, twojmax: int = 6):
        self.twojmax = twojmax
        self._tmp = None

    def ready(self) -> SiQsnapWeights:
        if self._tmp is not None:
            return self
        import tempfile

        from potune.config import resolve_config
        from potune.fitters import snap
        from potune.report.paper import qsnap_zuo_config
        from potune.steps.split import split

        self._tmp = tempfile.TemporaryDirectory(prefix=f"potune-si-qsnap-w{self.twojmax}-")
        root = Path(self._tmp.name)
        data = REPO / "data" / "zuo2020"
        raw = qsnap_zuo_config(
            data / "Si_train.xyz.gz", data / "Si_test.xyz.gz", "si-qsnap-w", 1, 1, twojmax=self.twojmax
        )
        raw["results_dir"] = str(root / "results")
        self.cfg = resolve_config(raw)
        weights = {k: v for k, v in self.cfg["space"].items() if k.startswith(("eweight", "fweight"))}
        self.space = Space.from_config(weights)
        self.fixed = {**self.cfg["fixed"], "rcutfac": self.RCUTFAC, "rfac0": self.RFAC0}
        with open(root / "split.log", "w") as fh, redirect_stdout(fh):
            split({"data": self.cfg["data"], "split": self.cfg["split"], "require_forces": True}, root / "split")
        fold = root / "split" / "fold0"
        spec = snap.descriptor_spec(self.fixed, self.cfg["snap"])
        meta = snap.compute_descriptors(
            spec, fold / "train.xyz", root / "desc", root / "desc.log", valid_file=fold / "valid.xyz"
        )
        if meta["status"] != "ok":
            raise RuntimeError(f"si-qsnap-w descriptors failed: {meta.get('reason')}")
        _, self.blocks = snap.load_blocks(root / "desc")
        self.vblocks = snap.load_valid_blocks(root / "desc")
        return self

    def __call__(self, x: Sequence) -> float:
        """The validation loss of the weights ``x`` (in the order of :attr:`space`)."""
        from potune.fitters import snap
        from potune.fitters.snap.nested import validation_errors

        self.ready()
        params = snap.resolve_params({**self.fixed, **self.space.to_dict(x)})
        coef, _ = snap.solve(self.blocks, params)
        return float(validation_errors(coef, self.vblocks, "weighted", float(self.cfg["loss"]["alpha"]))["loss"])


REPO = Path(__file__).resolve().parents[1]

#: real objectives: name -> objective (a callable on points in the order of its ``space``,
#: NaN for a failed evaluation); minimum unknown, regret = loss
REAL_OBJECTIVES: dict[str, Callable[[], DimerGap | SiQsnapWeights]] = {
    "dimer-gap4": lambda: DimerGap(4),
    "si-qsnap-w6": lambda: SiQsnapWeights(6),
}
_REAL_CACHE: dict[str, DimerGap | SiQsnapWeights] = {}


def real_objective(fname: str) -> DimerGap | SiQsnapWeights:
    """The process's one instance of a real objective (its split is written once)."""
    if fname not in _REAL_CACHE:
        _REAL_CACHE[fname] = REAL_OBJECTIVES[fname]().ready()
    return _REAL_CACHE[fname]


#: label -> optimizer config (seed filled in per run). ``bayes-b<q>-<liar>``: ours through
#: propose (rebuilt + replayed every round), batch q, pending-point strategy ``liar``;
#: ``skopt-seq``: one persistent skopt Optimizer, ask/tell one point at a time (what XPOT
#: does); ``optuna-tpe-b<q>``: Optuna's TPE with constant_liar=True, q trials asked before
#: the q results are told (needs optuna, not a dependency of potune).
OPTIMISERS: dict[str, dict] = {
    "skopt-seq": {"kind": "skopt-seq", "batch_size": 1, "n_initial": 8},
    "bayes-b1": {"kind": "bayes", "batch_size": 1, "n_initial": 8},
    **{
        f"bayes-b{q}-{liar}": {"kind": "bayes", "batch_size": q, "n_initial": 8, "liar": liar}
        for q in (8, 4)
        for liar in ("kb", "lp", "cl_min")
    },
    # asynchronous: batch 1, lookahead q - 1 (q trials in flight): iteration n is proposed
    # from the iterations before n - q + 1, the q - 1 before it pending (optimizer.lookahead)
    **{
        f"bayes-async-b{q}" + ("" if liar == "kb" else f"-{liar}"): {
            "kind": "bayes",
            "batch_size": 1,
            "lookahead": q - 1,
            "n_initial": 8,
            "liar": liar,
        }
        for q in (8, 4)
        for liar in ("kb", "lp", "cl_min")
    },
    # levers of the asynchronous search: a longer initial design, a fixed acquisition
    "bayes-async-b8-n16": {"kind": "bayes", "batch_size": 1, "lookahead": 7, "n_initial": 16},
    "bayes-async-b8-EI": {"kind": "bayes", "batch_size": 1, "lookahead": 7, "n_initial": 8, "acq_func": "EI"},
    "bayes-async-b8-n16-EI": {"kind": "bayes", "batch_size": 1, "lookahead": 7, "n_initial": 16, "acq_func": "EI"},
    "bayes-async-b8-n12": {"kind": "bayes", "batch_size": 1, "lookahead": 7, "n_initial": 12},
    # optimizer.log_loss: the GP models log(loss); the function is shifted to a positive loss
    # first (:func:`log_offset`), regret is measured on the function itself
    **{
        f"{label}-log": {**cfg, "log_loss": True}
        for label, cfg in (
            ("bayes-b1", {"kind": "bayes", "batch_size": 1, "n_initial": 8}),
            ("bayes-b8-kb", {"kind": "bayes", "batch_size": 8, "n_initial": 8, "liar": "kb"}),
            ("bayes-async-b8", {"kind": "bayes", "batch_size": 1, "lookahead": 7, "n_initial": 8}),
            ("bayes-async-b8-n16", {"kind": "bayes", "batch_size": 1, "lookahead": 7, "n_initial": 16}),
        )
    },
    "pso": {"kind": "pso", "batch_size": 8},
    "sobol": {"kind": "sobol", "batch_size": 8},
    "random": {"kind": "random", "batch_size": 8},
    **{f"optuna-tpe-b{q}": {"kind": "optuna-tpe", "batch_size": q, "n_initial": 8} for q in (1, 4, 8)},
    # Optuna asynchronous: q trials in flight, trial k asked when the results of trials < k - q + 1
    # are told (the conditioning of ours with lookahead q - 1), the rest running (constant liar)
    **{
        f"optuna-tpe-async-b{q}" + ("" if n == 8 else f"-n{n}"): {
            "kind": "optuna-tpe-async",
            "batch_size": 1,
            "lookahead": q - 1,
            "n_initial": n,
        }
        for q in (8,)
        for n in (8, 16)
    },
}
# ours without "-log" models the raw loss, as measured before optimizer.log_loss became the
# default (2026-12-03): said explicitly, since the optimiser's default is now log(loss)
for _cfg in OPTIMISERS.values():
    if _cfg["kind"] == "bayes":
        _cfg.setdefault("log_loss", False)
#: run by default (the Optuna anchor needs its own environment: --optimisers optuna-tpe-b1 ...)
DEFAULT_OPTIMISERS = [k for k in OPTIMISERS if not k.startswith("optuna")]


def space_for(bounds: list[tuple[float, float]]) -> Space:
    return Space.from_config({f"x{i}": {"type": "real", "low": lo, "high": hi} for i, (lo, hi) in enumerate(bounds)})


def _skopt_seq(space: Space, cfg: dict, fn, budget: int):
    """A persistent skopt Optimizer asked and told one point at a time (XPOT's loop)."""
    import warnings

    from skopt import Optimizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = Optimizer(
            space.to_skopt().dimensions,
            base_estimator="GP",
            n_initial_points=int(cfg["n_initial"]),
            initial_point_generator="sobol",
            acq_func="gp_hedge",
            random_state=int(cfg["seed"]),
        )
        t0 = time.perf_counter()
        seen: list[float] = []
        for _ in range(budget):
            x = opt.ask()
            dt = time.perf_counter() - t0  # the previous tell (skopt fits there) and this ask
            y = fn(x)
            yield [x], [y], dt
            t0 = time.perf_counter()
            # a failed evaluation (NaN) is told potune's failure penalty, as propose tells it
            opt.tell(x, y if math.isfinite(y) else failure_penalty(seen))
            seen.append(y)


def _optuna_tpe(space: Space, cfg: dict, fn, budget: int):
    """Optuna TPE, constant_liar=True, ``batch_size`` trials asked before their results are told."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=int(cfg["seed"]), constant_liar=True, n_startup_trials=int(cfg["n_initial"])
    )
    study = optuna.create_study(sampler=sampler, direction="minimize")
    dists = {p.name: optuna.distributions.FloatDistribution(p.low, p.high) for p in space.params}
    q, done = int(cfg["batch_size"]), 0
    while done < budget:
        t0 = time.perf_counter()
        trials = [study.ask(dists) for _ in range(min(q, budget - done))]
        dt = time.perf_counter() - t0
        xs = [[t.params[n] for n in space.names] for t in trials]
        ys = [fn(x) for x in xs]
        for t, y in zip(trials, ys):
            study.tell(t, y)
        done += len(trials)
        yield xs, ys, dt


def _optuna_tpe_async(space: Space, cfg: dict, fn, budget: int):
    """Optuna TPE, constant_liar=True, ``lookahead + 1`` trials in flight: trial k is asked
    once the results of trials < k - lookahead are told (the same conditioning as ours with
    ``optimizer.lookahead``: :func:`potune.search.loop.conditioning`); the trials in between
    are running, which TPE's constant liar treats as pending."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=int(cfg["seed"]), constant_liar=True, n_startup_trials=int(cfg["n_initial"])
    )
    study = optuna.create_study(sampler=sampler, direction="minimize")
    dists = {p.name: optuna.distributions.FloatDistribution(p.low, p.high) for p in space.params}
    ahead = int(cfg["lookahead"])
    asked: list = []
    ys: list[float] = []
    told = 0
    for k in range(budget):
        while told < k - ahead:  # trials 0 .. k - ahead - 1 have ended
            study.tell(asked[told], ys[told])
            told += 1
        t0 = time.perf_counter()
        trial = study.ask(dists)
        dt = time.perf_counter() - t0
        x = [trial.params[n] for n in space.names]
        asked.append(trial)
        ys.append(fn(x))
        yield [x], [ys[-1]], dt


def _outcome(y: float) -> dict:
    """A table row's status and loss as rule ``collect`` writes them: a failed trial (NaN
    here) has status failed and loss NaN (propose tells it the failure penalty)."""
    return {"status": "ok", "loss": y} if math.isfinite(y) else {"status": "failed", "loss": math.nan}


def _workflow(space: Space, cfg: dict, fn, budget: int):
    """Ours: each round calls propose on the table so far (optimiser rebuilt, table replayed)."""
    table: list[dict] = []
    rnd = 0
    while len(table) < budget:
        t0 = time.perf_counter()
        props, _ = propose(pd.DataFrame(table) if table else None, space, cfg, rnd)
        dt = time.perf_counter() - t0
        props = props[: budget - len(table)]
        xs = [[p.point[n] for n in space.names] for p in props]
        ys = [fn(x) for x in xs]
        for p, y in zip(props, ys):
            table.append({"iteration": rnd, "trial": p.trial, "trial_id": p.trial_id, **p.point, **_outcome(y)})
        rnd += 1
        yield xs, ys, dt


def _workflow_async(space: Space, cfg: dict, fn, budget: int):
    """Ours asynchronous (``optimizer.lookahead`` L, batch 1): iteration n is proposed by
    ``propose`` from the trials of iterations before n - L (the cumulative table the workflow
    reads), with the points of n - L ... n - 1 pending, as the workflow's walk does."""
    from potune.search.loop import conditioning
    from potune.search.optimizers import lookahead

    ahead = lookahead(cfg)
    table: list[dict] = []
    points: list[list] = []
    for n in range(budget):
        told, pending = conditioning(n, ahead)
        seen = [r for r in table if told is not None and r["iteration"] <= told]
        t0 = time.perf_counter()
        props, _ = propose(
            pd.DataFrame(seen) if seen else None,
            space,
            cfg,
            n,
            pending=[dict(zip(space.names, points[m])) for m in pending],
        )
        dt = time.perf_counter() - t0
        for p in props[: budget - len(table)]:
            x = [p.point[k] for k in space.names]
            y = fn(x)
            points.append(x)
            table.append({"iteration": n, "trial": p.trial, "trial_id": p.trial_id, **p.point, **_outcome(y)})
            yield [x], [y], dt
        if len(table) >= budget:
            return


def run_one(fname: str, label: str, seed: int, budget: int) -> list[dict]:
    """One search; one row per evaluation. A failed evaluation of a real objective (NaN)
    counts as an evaluation and leaves the best so far as it was."""
    if fname in REAL_OBJECTIVES:  # minimum unknown: regret = loss; a loss already, no shift for log_loss
        fn = real_objective(fname)
        space, fmin = fn.space, 0.0
    else:
        fn, bounds, fmin = FUNCTIONS[fname]
        space = space_for(bounds)
    cfg = {**OPTIMISERS[label], "seed": seed}
    ahead = int(cfg.get("lookahead") or 0)
    batch = int(cfg["batch_size"]) * (ahead + 1)  # trials in flight
    driver = {"skopt-seq": _skopt_seq, "optuna-tpe": _optuna_tpe, "optuna-tpe-async": _optuna_tpe_async}.get(
        cfg["kind"], _workflow_async if ahead else _workflow
    )
    # log_loss on an analytic function: the optimiser sees a positive loss; regret stays on f itself
    shift = log_offset(fname) - fmin if cfg.get("log_loss") and fname in FUNCTIONS else 0.0
    seen = (lambda x: fn(x) + shift) if shift else fn
    out: list[dict] = []
    best = math.inf
    for it, (xs, ys, dt) in enumerate(driver(space, cfg, seen, budget)):
        ys = [y - shift for y in ys]
        # a round: the time of one fit when all fits take as long; asynchronous, iteration n
        # ends in round n // (lookahead + 1) + 1
        rnd = it // (ahead + 1)
        for y in ys:
            if math.isfinite(y):
                best = min(best, y)
            out.append(
                {
                    "function": fname,
                    "optimiser": label,
                    "batch": batch,
                    "seed": seed,
                    "evaluation": len(out) + 1,
                    "round": rnd + 1,
                    "iteration": it,
                    "lookahead": ahead,
                    "best_so_far": best,
                    "regret": best - fmin,
                    "propose_s": dt,
                    "value": y,
                    "status": "ok" if math.isfinite(y) else "failed",
                }
            )
    return out


# ----------------------------------------------------------------------------- simulated wall time
#: fit_time_s (s) of the 18 successful trials of a real search: the qSNAP Li XPOT-protocol
#: search of ``python -m potune.paper`` (results/paper/runs/paper-xpot-qsnap-Li-xpot/iter8/
#: table.csv, 9 iterations x 2, Zuo Li data, cached descriptors; median 0.63 s, log-sd 0.43)
REAL_FIT_TIMES_S = [
    0.637, 0.658, 0.557, 0.521, 0.531, 0.546, 0.631, 0.682, 0.848,
    0.608, 0.627, 0.63, 1.059, 0.925, 1.524, 0.297, 0.39, 0.24,
]  # fmt: skip


def fit_time_sampler(source: str | None, sigma: float | None):
    """Draws of fit times in units of their median: resampled from ``source`` (a
    ``trials.csv``, column ``fit_time_s``; None: :data:`REAL_FIT_TIMES_S`), or a lognormal of
    log-sd ``sigma`` when given."""
    if sigma is not None:
        return lambda rng, n: rng.lognormal(0.0, float(sigma), n)
    times = (
        np.asarray(REAL_FIT_TIMES_S)
        if source is None
        else pd.to_numeric(pd.read_csv(source)["fit_time_s"], errors="coerce").dropna().to_numpy()
    )
    times = times / np.median(times)
    return lambda rng, n: rng.choice(times, n)


def simulated_wall(df: pd.DataFrame, draw) -> pd.DataFrame:
    """Add ``wall`` (end time of each evaluation, in median fit times) to ``df``: fit times
    drawn per (seed, evaluation), the same for every optimiser. Iteration i (a round of a
    batch optimiser, one trial of an asynchronous one) starts when every iteration up to
    i - lookahead - 1 has ended (the workflow's rule: its proposal needs that table), all its
    trials at once (enough cores for the trials in flight); the proposal time is neglected."""
    out = []
    for (_, _, seed), d in df.groupby(["function", "optimiser", "seed"], sort=False):
        d = d.sort_values("evaluation").copy()
        dur = draw(np.random.default_rng([int(seed), 2024]), int(d["evaluation"].max()))[d["evaluation"].to_numpy() - 1]
        ahead = int(d["lookahead"].iloc[0]) if "lookahead" in d else 0
        ends = np.zeros(len(d))
        it_end: dict[int, float] = {}
        its = d["iteration"].to_numpy() if "iteration" in d else d["round"].to_numpy() - 1
        for i in sorted(set(its)):
            start = max((e for m, e in it_end.items() if m <= i - ahead - 1), default=0.0)
            sel = its == i
            ends[sel] = start + dur[sel]
            it_end[i] = float(ends[sel].max())
        d["wall"] = ends
        out.append(d)
    return pd.concat(out)


def regret_at_times(df: pd.DataFrame, times: Sequence[float]) -> pd.DataFrame:
    """Median (over seeds) best regret among evaluations ended by each simulated time."""
    rows = []
    for (fname, lab), d in df.groupby(["function", "optimiser"], sort=False):
        row = {"function": fname, "optimiser": lab}
        for t in times:
            per = [g.loc[g["wall"] <= t, "regret"].min() for _, g in d.groupby("seed")]
            row[f"t={t:g}"] = float(np.median([v if np.isfinite(v) else np.inf for v in per]))
        row["wall_all"] = float(d.groupby("seed")["wall"].max().median())
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- report
def summarise(df: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Median (and quartiles) of the final regret, rounds used and proposal time, per function
    and optimiser."""
    final = df[df["evaluation"] == budget]
    g = final.groupby(["function", "optimiser"], sort=False)
    rounds_s = df.drop_duplicates(["function", "optimiser", "seed", "round"]).groupby(
        ["function", "optimiser"], sort=False
    )["propose_s"]
    out = pd.DataFrame(
        {
            "median_regret": g["regret"].median(),
            "q25": g["regret"].quantile(0.25),
            "q75": g["regret"].quantile(0.75),
            "rounds": g["round"].max(),
            "propose_s_per_round": rounds_s.mean(),
        }
    )
    return out.reset_index()


def batch_cost(df: pd.DataFrame, budget: int, ref: str = "skopt-seq") -> pd.DataFrame:
    """Every optimiser against ``ref`` (sequential skopt) at equal evaluations: ratio of the
    median final regrets, median of the paired ratio per seed, and how many evaluations it
    needs to reach ``ref``'s median final regret."""
    rows = []
    for fname, d in df.groupby("function", sort=False):
        final = d[d["evaluation"] == budget].set_index(["optimiser", "seed"])["regret"]
        if ref not in final.index.get_level_values(0):
            continue
        r = final.loc[ref]
        r_med = float(r.median())
        for lab in dict.fromkeys(d["optimiser"]):
            if lab == ref:
                continue
            other = final.loc[lab]
            curve = d[d["optimiser"] == lab].groupby("evaluation")["regret"].median()
            reach = curve[curve <= r_med]
            rows.append(
                {
                    "function": fname,
                    "optimiser": lab,
                    f"median_{ref}": r_med,
                    "median_regret": float(other.median()),
                    "ratio_of_medians": float(other.median() / max(r_med, 1e-12)),
                    "median_paired_ratio": float(np.median((other + 1e-12) / (r.reindex(other.index) + 1e-12))),
                    f"evals_to_reach_{ref}_median": int(reach.index.min()) if len(reach) else None,
                    "rounds": int(d[d["optimiser"] == lab]["round"].max()),
                }
            )
    return pd.DataFrame(rows)


def table_by_q(df: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Median final regret: one row per function and method, one column per batch size."""
    final = df[df["evaluation"] == budget].copy()
    final["method"] = [
        lab.replace(f"-b{b}", "") if f"-b{b}" in lab else lab for lab, b in zip(final["optimiser"], final["batch"])
    ]
    return final.pivot_table(
        index=["function", "method"], columns="batch", values="regret", aggfunc="median", sort=False
    )


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fnames = list(dict.fromkeys(df["function"]))
    cols = ("evaluation", "round", "wall") if "wall" in df else ("evaluation", "round")
    fig, axes = plt.subplots(len(fnames), len(cols), figsize=(5.5 * len(cols), 3.4 * len(fnames)), squeeze=False)
    for r, fname in enumerate(fnames):
        d = df[df["function"] == fname]
        for c, xcol in enumerate(cols):
            ax = axes[r, c]
            for lab in OPTIMISERS:
                e = d[d["optimiser"] == lab]
                if not len(e):
                    continue
                # best-so-far at the end of each round / after each evaluation / by each time
                if xcol == "wall":
                    grid = np.linspace(0, float(d["wall"].max()), 200)
                    per = pd.DataFrame(
                        {sd: [g.loc[g["wall"] <= t, "regret"].min() for t in grid] for sd, g in e.groupby("seed")},
                        index=grid,
                    )
                else:
                    per = e.groupby([xcol, "seed"])["regret"].min().unstack("seed")
                med, lo, hi = per.median(axis=1), per.quantile(0.25, axis=1), per.quantile(0.75, axis=1)
                ax.plot(med.index, med.to_numpy(), label=lab, drawstyle="steps-post")
                ax.fill_between(med.index, lo.to_numpy(), hi.to_numpy(), alpha=0.15, step="post")
            ax.set_yscale("log")
            ax.set_xlabel("simulated wall time (median fit times)" if xcol == "wall" else xcol + "s")
            ax.set_ylabel("regret (best so far − minimum)")
            ax.set_title(f"{fname}: vs " + ("simulated wall time" if xcol == "wall" else f"{xcol}s"))
            ax.grid(alpha=0.3)
        axes[r, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="Branin only, 2 seeds, 16 evaluations (< 2 min)")
    ap.add_argument(
        "--functions",
        nargs="+",
        choices=[*FUNCTIONS, *REAL_OBJECTIVES],
        default=list(FUNCTIONS),
        help="default: the analytic functions; dimer-gap4 is a real objective (one GAP fit per evaluation)",
    )
    ap.add_argument("--optimisers", nargs="+", choices=list(OPTIMISERS), default=DEFAULT_OPTIMISERS)
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument("--budget", type=int, default=32, help="evaluations per search (default 32)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument(
        "--report",
        nargs="+",
        type=Path,
        metavar="CSV",
        help="run nothing: combine these CSVs (e.g. one per function, run side by side) "
        "into <out>/optimisers.csv, the plot and the summary",
    )
    ap.add_argument(
        "--fit-times",
        help="trials.csv whose fit_time_s the simulated wall time resamples (default: REAL_FIT_TIMES_S)",
    )
    ap.add_argument("--fit-time-sigma", type=float, help="instead: lognormal fit times of this log-sd")
    ap.add_argument(
        "--times",
        type=float,
        nargs="+",
        default=[4.0, 8.0, 16.0],
        help="simulated wall times (median fit times) at which to report regret",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.functions, args.seeds, args.budget = ["branin"], 2, 16
    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    if args.report:
        df = pd.concat([pd.read_csv(f) for f in args.report], ignore_index=True)
        args.budget = int(df.groupby(["function", "optimiser", "seed"])["evaluation"].max().min())
        args.seeds = int(df["seed"].nunique())
    else:
        rows: list[dict] = []
        for fname in args.functions:
            for lab in args.optimisers:
                t0 = time.perf_counter()
                for seed in range(args.seeds):
                    rows += run_one(fname, lab, seed, args.budget)
                pd.DataFrame(rows).to_csv(args.out / "optimisers.partial.csv", index=False)
                print(
                    f"{fname:11s} {lab:9s} {args.seeds} seeds x {args.budget} evaluations: "
                    f"{time.perf_counter() - t0:6.1f} s",
                    flush=True,
                )
        df = pd.DataFrame(rows)
    if "iteration" not in df:  # CSVs of an earlier version: synchronous rounds
        df["iteration"], df["lookahead"] = df["round"] - 1, 0
    df["iteration"] = df["iteration"].fillna(df["round"] - 1).astype(int)
    df["lookahead"] = df["lookahead"].fillna(0).astype(int)
    df = simulated_wall(
        df.drop(columns=["wall"], errors="ignore"), fit_time_sampler(args.fit_times, args.fit_time_sigma)
    )
    csv = args.out / "optimisers.csv"
    df.to_csv(csv, index=False)
    png = args.out / "optimisers.png"
    plot(df, png)
    pd.set_option("display.width", 200)
    print(f"\nfinal regret after {args.budget} evaluations (median, quartiles over {args.seeds} seeds):")
    print(summarise(df, args.budget).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nmedian final regret by batch size (columns), {args.seeds} seeds:")
    print(table_by_q(df, args.budget).to_string(float_format=lambda v: f"{v:.4g}"))
    bc = batch_cost(df, args.budget)
    if len(bc):
        print("\nagainst sequential skopt (persistent Optimizer, XPOT-style) at equal evaluations:")
        print(bc.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    source = (
        f"lognormal, log-sd {args.fit_time_sigma}"
        if args.fit_time_sigma is not None
        else (args.fit_times or "REAL_FIT_TIMES_S (qSNAP Li search)")
    )
    print(
        f"\nmedian regret by simulated wall time (units: the median fit time; fit times from {source}; "
        "wall_all: median time to end every evaluation):"
    )
    print(regret_at_times(df, args.times).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwrote {csv} and {png}; total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
