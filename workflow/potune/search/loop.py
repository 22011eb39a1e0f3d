"""The search loop's decisions: replay the trial table into an optimiser, propose the next
batch, and decide when to stop."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .optimizers import make_optimizer
from .space import Space

#: loss told for a failed trial when nothing finite has been seen yet
DEFAULT_FAILURE_LOSS = 1.0e3


def failure_penalty(losses: Sequence[float], configured: float | None = None) -> float:
    """Loss told to the optimiser for a failed trial.

    ``configured`` when given; otherwise the worst finite loss seen so far, or
    :data:`DEFAULT_FAILURE_LOSS` when there is none.
    """
    if configured is not None:
        return float(configured)
    finite = [float(v) for v in losses if v is not None and math.isfinite(float(v))]
    return max(finite) if finite else DEFAULT_FAILURE_LOSS


def ok_mask(table: pd.DataFrame) -> pd.Series:
    loss = pd.to_numeric(table["loss"], errors="coerce")
    return (table["status"] == "ok") & np.isfinite(loss)


def told_losses(table: pd.DataFrame, penalty: float | None = None) -> np.ndarray:
    """Losses as told to the optimiser: failed trials get the failure penalty."""
    loss = pd.to_numeric(table["loss"], errors="coerce").to_numpy(dtype=float)
    ok = ok_mask(table).to_numpy()
    pen = failure_penalty(loss[ok], penalty)
    return np.where(ok, loss, pen)


def replay(opt, table: pd.DataFrame, space: Space, penalty: float | None = None, prior: bool = False) -> None:
    """Tell ``opt`` every trial of ``table``, one ``tell`` per iteration, in order.

    Failed trials are told the failure penalty and flagged ``failed``; ``prior`` marks the
    trials of an earlier search (warm start).
    """
    if table is None or len(table) == 0:
        return
    table = table.sort_values(["iteration", "trial"], kind="stable")
    losses = told_losses(table, penalty)
    failed = ~ok_mask(table).to_numpy()
    for it in sorted(table["iteration"].unique()):
        sel = (table["iteration"] == it).to_numpy()
        rows = table[sel]
        points = [space.to_point(r) for r in rows.to_dict("records")]
        opt.tell(points, losses[sel].tolist(), failed=failed[sel].tolist(), prior=prior)


@dataclass
class Proposal:
    iteration: int
    index: int
    point: dict
    seed: int
    origin: str = "optimizer"

    @property
    def trial(self) -> str:
        return f"t{self.index:02d}"

    @property
    def trial_id(self) -> str:
        return f"{self.iteration}-{self.index:02d}"


def trial_seed(base_seed: int, iteration: int, index: int) -> int:
    """A per-trial seed (for the fitter's own randomness, e.g. sparse point selection)."""
    return (
        int(np.random.SeedSequence([int(base_seed), int(iteration), int(index)]).generate_state(1)[0] % (2**31 - 2)) + 1
    )


def propose(
    table: pd.DataFrame | None,
    space: Space,
    opt_cfg: dict,
    iteration: int,
    priors: pd.DataFrame | None = None,
    defaults: dict | None = None,
    pending: Sequence[dict] | None = None,
) -> tuple[list[Proposal], dict]:
    """The next batch of trials, from the configuration and the trial table.

    Parameters
    ----------
    table
        Every finished trial so far (None or empty at the first iteration).
    priors
        Trials of an earlier search, told before the first ask (warm start).
    defaults
        The fitter's default hyperparameters (:func:`potune.fitters.default_values`). With
        ``optimizer.default_first`` (the default), the first trial of iteration 0 is this
        point clipped into the space (origin ``default``), so that a search never ends worse,
        on validation, than the fitter's defaults. Dimensions without a default keep the
        optimiser's value.
    pending
        Points (``{name: value}``) proposed by earlier iterations whose losses are not in
        ``table`` yet (``optimizer.lookahead``): the optimiser treats them as taken.

    Returns
    -------
    proposals, optimiser state (a readable dict)
        Fewer than ``batch_size`` proposals (none at the end) when the optimiser has no more
        points to give (a grid that has been evaluated whole).
    """
    opt = make_optimizer(space, opt_cfg)
    penalty = opt_cfg.get("failure_penalty")
    if priors is not None and len(priors):
        replay(opt, priors.assign(iteration=-1), space, penalty, prior=True)
    replay(opt, table, space, penalty)
    n = int(opt_cfg.get("batch_size", 4))
    points = opt.ask(n, pending=[space.to_point(p) for p in pending]) if pending else opt.ask(n)
    origins = ["optimizer"] * len(points)
    # a grid is a complete design: it keeps every point of its own
    use_default = uses_default_first(opt_cfg)
    if iteration == 0 and points and defaults and use_default:
        known = {k: v for k, v in defaults.items() if k in space.names}
        if known:
            default = space.clip_point(known, points[0])
            # the optimiser's own first point takes the place of a copy of the default
            rest = [points[0] if _num_points_equal(p, default) else p for p in points[1:]]
            points, origins[0] = [default, *rest], "default"
    seed = int(opt_cfg.get("seed", 0))
    props = [
        Proposal(iteration, k, space.to_dict(p), trial_seed(seed, iteration, k), origins[k])
        for k, p in enumerate(points)
    ]
    return props, opt.state()


def uses_default_first(opt_cfg: dict) -> bool:
    """Whether a search starts at the fitter's default hyperparameters: ``optimizer.default_first``
    (default true), except with ``grid`` (a complete design keeps every point of its own)."""
    return bool(opt_cfg.get("default_first", True)) and opt_cfg.get("kind", "bayes") != "grid"


def conditioning(iteration: int, ahead: int) -> tuple[int | None, list[int]]:
    """What iteration ``iteration`` is proposed from, with lookahead ``ahead``: (the last
    iteration whose table it is told, or None for none; the iterations whose proposals are
    its pending points). Only the configuration fixes these, never the order in which fits
    end, so the proposals are the same whatever that order is."""
    told = iteration - 1 - int(ahead)
    return (told if told >= 0 else None), list(range(max(0, iteration - int(ahead)), iteration))


def trial_budget(cfg: dict) -> int | None:
    """The most trials the stop rules allow: ``stop.max_iterations`` x ``optimizer.batch_size``
    (None when either is not set)."""
    max_it = (cfg.get("stop") or {}).get("max_iterations")
    batch = (cfg.get("optimizer") or {}).get("batch_size")
    return int(max_it) * int(batch) if max_it and batch else None


def best_trial(table: pd.DataFrame) -> dict | None:
    """The row with the lowest finite loss among successful trials (None if there is none)."""
    if table is None or len(table) == 0:
        return None
    ok = table[ok_mask(table)]
    if len(ok) == 0:
        return None
    loss = pd.to_numeric(ok["loss"])
    return ok.loc[loss.idxmin()].to_dict()


def should_stop(
    table: pd.DataFrame | None,
    stop_cfg: dict,
    iteration: int,
    started_at: float | None = None,
    now: float | None = None,
    search: dict | None = None,
) -> tuple[bool, str]:
    """Whether iteration ``iteration`` should not run, and why.

    Rules, checked in order: ``max_iterations`` (iterations 0..max-1 run), ``target_loss``
    (best loss <= target), ``patience`` (no improvement of the best loss during the last
    ``patience`` iterations), ``max_walltime_min`` (minutes since the search started), and,
    when ``search`` (``space``, ``fixed``, ``optimizer``) is given, a ``grid`` design that
    has been evaluated whole (see :func:`design_exhausted`).
    """
    max_it = stop_cfg.get("max_iterations")
    if max_it is not None and iteration >= int(max_it):
        return True, f"max_iterations ({max_it}) reached"
    if table is None or len(table) == 0:
        return False, ""
    best = best_trial(table)
    target = stop_cfg.get("target_loss")
    if target is not None and best is not None and float(best["loss"]) <= float(target):
        return True, f"target_loss {target} reached (best loss {float(best['loss']):.6g}, trial {best['trial_id']})"
    patience = stop_cfg.get("patience")
    if patience and iteration > int(patience):
        ok = table[ok_mask(table)]
        loss = pd.to_numeric(ok["loss"])
        recent = ok["iteration"] >= iteration - int(patience)
        if len(ok) and recent.any() and (~recent).any():
            if loss[recent].min() >= loss[~recent].min():
                return True, f"patience: no improvement in the last {patience} iteration(s)"
        elif len(ok) and not recent.any():
            return True, f"patience: no successful trial in the last {patience} iteration(s)"
    budget = stop_cfg.get("max_walltime_min")
    if budget is not None and started_at is not None:
        elapsed = ((now or time.time()) - started_at) / 60.0
        if elapsed >= float(budget):
            return True, f"wall-time budget of {budget} min used ({elapsed:.1f} min)"
    if search is not None and design_exhausted(table, search):
        return True, f"optimizer.kind {search['optimizer']['kind']}: every point of the design has been evaluated"
    return False, ""


def design_exhausted(table: pd.DataFrame | None, search: dict) -> bool:
    """Whether the optimiser has no point left to propose (only a ``grid`` can run out):
    rebuilt from ``search`` (``space``, ``fixed``, ``optimizer``) and told the priors and
    ``table``, it answers an ask with nothing."""
    opt_cfg = search["optimizer"]
    if opt_cfg.get("kind") != "grid":
        return False
    import warnings

    inner = search.get("inner") or {}  # a nested SNAP search: the outer space only
    space = Space.from_config({k: v for k, v in search["space"].items() if k not in (inner.get("space") or {})})
    opt = make_optimizer(space, opt_cfg)
    if opt_cfg.get("priors"):
        with warnings.catch_warnings():  # load_priors' warnings were shown by propose
            warnings.simplefilter("ignore")
            priors = load_priors(opt_cfg["priors"], space, search.get("fixed") or {})
        if len(priors):
            replay(opt, priors.assign(iteration=-1), space, prior=True)
    replay(opt, table, space)
    return len(opt.ask(1)) == 0


def load_priors(path: str, space: Space, fixed: dict) -> pd.DataFrame:
    """Trials of an earlier search (its ``trials.csv``) to tell the optimiser first.

    Rows whose fixed hyperparameters differ from ``fixed``, or whose point lies outside the
    space, are skipped with a warning that says how many.
    """
    import warnings

    from ..trials import read_table

    df = read_table(path)
    missing = [n for n in space.names + ["status", "loss"] if n not in df.columns]
    if missing:
        from ..errors import ConfigError

        raise ConfigError(f"optimizer.priors: {path} lacks column(s) {missing}")
    keep = []
    n_fixed, n_out = 0, 0
    for row in df.to_dict("records"):
        if any(k in row and str(row[k]) != str(v) and not _num_equal(row[k], v) for k, v in fixed.items()):
            n_fixed += 1
            continue
        if not space.contains(row):
            n_out += 1
            continue
        keep.append(row)
    if n_fixed:
        warnings.warn(f"optimizer.priors: skipped {n_fixed} row(s) of {path} whose fixed hyperparameters differ")
    if n_out:
        warnings.warn(f"optimizer.priors: skipped {n_out} row(s) of {path} outside the search space")
    out = pd.DataFrame(keep, columns=df.columns)
    out["trial"] = [f"p{i:04d}" for i in range(len(out))]
    return out


def _num_points_equal(a: Sequence, b: Sequence) -> bool:
    return all(_num_equal(x, y) or x == y for x, y in zip(a, b))


def _num_equal(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return False
