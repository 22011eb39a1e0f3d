"""Rule ``propose``: the proposals of one iteration."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from ..console import say
from ..io import read_yaml, write_yaml
from ..search.space import Space


def propose_step(
    search_cfg: dict,
    iteration: int,
    table_file: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    stage1_best: str | os.PathLike | None = None,
    pending_dirs: Sequence[str | os.PathLike] = (),
) -> list:
    """Write one ``t<k>.yaml`` per proposed trial of iteration ``iteration``, plus
    ``meta.yaml`` (when the iteration was proposed) and ``optimizer_state.yaml``.

    ``search_cfg`` holds ``space``, ``fixed``, ``optimizer`` and ``fitter`` (whose default
    hyperparameters may be the first trial: ``optimizer.default_first``), and ``inner`` for a
    nested SNAP search (:func:`potune.fitters.snap.nested.inner_config`): the optimiser then
    searches the space without the inner dimensions and every proposal carries ``inner``.
    Whether the iteration runs
    at all is decided before (stop rules, see :func:`potune.search.should_stop`).
    ``stage1_best``: stage 1's ``best.yaml`` (strategy two_stage); its descriptor
    hyperparameters are added to ``fixed``. ``pending_dirs``: the proposals of the
    iterations still running (``optimizer.lookahead``); ``table_file`` then ends before them.
    With ``inner.warm_start`` every proposal's ``inner.start`` holds the inner-best weights of
    the best trials of that table (:func:`potune.fitters.snap.nested.warm_starts`), the first
    points of its inner search.
    """
    from ..search.loop import propose
    from ..trials import read_table

    if stage1_best:
        from ..search.twostage import stage2_config

        search_cfg = stage2_config(search_cfg, stage1_best)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = read_table(table_file) if table_file else None
    inner = search_cfg.get("inner") or None
    space = Space.from_config(search_space(search_cfg))
    fixed = search_cfg.get("fixed") or {}
    priors = None
    if search_cfg["optimizer"].get("priors"):
        from ..search.loop import load_priors

        priors = load_priors(search_cfg["optimizer"]["priors"], space, fixed)
    defaults = None
    if search_cfg.get("fitter"):
        from ..fitters import default_values, get_fitter

        defaults = default_values(get_fitter(search_cfg["fitter"]), space.names)
    pending = [read_yaml(p)["point"] for d in pending_dirs for p in sorted(Path(d).glob("t*.yaml"))]
    props, state = propose(
        table, space, search_cfg["optimizer"], iteration, priors=priors, defaults=defaults, pending=pending
    )
    if pending:
        state = {**state, "pending_trials": len(pending)}
    if not props:  # the stop rules end a search whose grid is covered; this is a grid covered by the priors
        raise ValueError(
            f"optimizer.kind {search_cfg['optimizer']['kind']}: no point left to propose at iteration {iteration} "
            "(every point of the design is already in the trial table or optimizer.priors)"
        )
    if inner and inner.get("warm_start"):
        from ..fitters.snap.nested import warm_starts

        # recorded with the proposal: a resumed search reuses them, never a later table's
        starts = warm_starts(table, inner)
        if starts:
            inner = {**inner, "start": starts}
    for p in props:
        write_yaml(
            out / f"{p.trial}.yaml",
            {
                "iteration": iteration,
                "trial": p.trial,
                "trial_id": p.trial_id,
                "seed": p.seed,
                "origin": p.origin,
                "point": p.point,
                "fixed": fixed,
                **({"inner": inner} if inner else {}),
            },
        )
    write_yaml(out / "optimizer_state.yaml", state)
    write_yaml(out / "meta.yaml", {"iteration": iteration, "n_trials": len(props), "started_at": time.time()})
    say(f"iteration {iteration}: proposing {len(props)} trial(s)")
    return props


def search_space(search_cfg: dict) -> dict:
    """The space the (outer) optimiser searches: without the inner search's dimensions when
    ``search_cfg`` has ``inner`` or is a resolved configuration with ``snap.nested: true``."""
    inner = search_cfg.get("inner") or {}
    if not inner and search_cfg.get("fitter") == "snap" and (search_cfg.get("snap") or {}).get("nested") is True:
        from ..fitters.snap.nested import outer_space  # the whole resolved configuration

        return outer_space(search_cfg["space"], True)
    return {k: v for k, v in search_cfg["space"].items() if k not in (inner.get("space") or {})}


def proposal_trials(proposals_dir: str | os.PathLike) -> list[str]:
    """Trial names (``t00``, ``t01``, ...) written by :func:`propose_step`."""
    return sorted(p.stem for p in Path(proposals_dir).glob("t*.yaml"))
