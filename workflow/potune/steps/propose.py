"""Rule ``propose``: the proposals of one iteration."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..console import say
from ..io import write_yaml
from ..search.space import Space


def propose_step(
    search_cfg: dict,
    iteration: int,
    table_file: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    stage1_best: str | os.PathLike | None = None,
) -> list:
    """Write one ``t<k>.yaml`` per proposed trial of iteration ``iteration``, plus
    ``meta.yaml`` (when the iteration was proposed) and ``optimizer_state.yaml``.

    ``search_cfg`` holds ``space``, ``fixed`` and ``optimizer``, and ``inner`` for a nested
    SNAP search (:func:`potune.fitters.snap.nested.inner_config`): the optimiser then
    searches the space without the inner dimensions and every proposal carries ``inner``. Whether the iteration runs
    at all is decided before (stop rules, see :func:`potune.search.should_stop`).
    ``stage1_best``: stage 1's ``best.yaml`` (strategy two_stage); its descriptor
    hyperparameters are added to ``fixed``.
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
    props, state = propose(table, space, search_cfg["optimizer"], iteration, priors=priors)
    if not props:  # the stop rules end a search whose grid is covered; this is a grid covered by the priors
        raise ValueError(
            f"optimizer.kind {search_cfg['optimizer']['kind']}: no point left to propose at iteration {iteration} "
            "(every point of the design is already in the trial table or optimizer.priors)"
        )
    for p in props:
        write_yaml(
            out / f"{p.trial}.yaml",
            {
                "iteration": iteration,
                "trial": p.trial,
                "trial_id": p.trial_id,
                "seed": p.seed,
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
    ``search_cfg`` has ``inner`` (a nested SNAP search)."""
    inner = search_cfg.get("inner") or {}
    return {k: v for k, v in search_cfg["space"].items() if k not in (inner.get("space") or {})}


def proposal_trials(proposals_dir: str | os.PathLike) -> list[str]:
    """Trial names (``t00``, ``t01``, ...) written by :func:`propose_step`."""
    return sorted(p.stem for p in Path(proposals_dir).glob("t*.yaml"))
