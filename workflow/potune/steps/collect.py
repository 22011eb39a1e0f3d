"""Checkpoint ``collect``: one iteration's trials appended to the trial table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..console import say

if TYPE_CHECKING:
    import pandas as pd


def collect_step(
    names: Sequence[str],
    iteration: int,
    previous_table: str | os.PathLike | None,
    proposals_dir: str | os.PathLike,
    trial_dirs: dict[str, Sequence[str]],
    out_table: str | os.PathLike,
    budget: int | None = None,
) -> pd.DataFrame:
    """Append iteration ``iteration``'s trials to the table and print a progress line
    (``budget``: the most trials the stop rules allow, for that line)."""
    from ..search.loop import best_trial
    from ..trials import append_rows, read_table, trial_row, write_table

    prev = read_table(previous_table) if previous_table else None
    rows = [trial_row(Path(proposals_dir) / f"{t}.yaml", dirs) for t, dirs in sorted(trial_dirs.items())]
    table = append_rows(prev, rows, names)
    write_table(out_table, table)
    n_failed = sum(r["status"] != "ok" for r in rows)
    best = best_trial(table)
    best_txt = (
        f"best loss so far {float(best['loss']):.5g} (trial {best['trial_id']})" if best else "no successful trial yet"
    )
    say(
        f"iteration {iteration} done: {len(rows)} trial(s), {n_failed} failed; {best_txt}; "
        f"trials done {len(table)}" + (f"/{budget}" if budget else "")
    )
    return table
