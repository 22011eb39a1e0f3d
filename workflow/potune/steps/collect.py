"""Checkpoint ``collect``: one iteration's trials appended to the trial table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..console import say
from ..errors import PotuneError
from ..io import read_json

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
    common = same_exception([trial_exception(dirs, "valid.json") for _, dirs in sorted(trial_dirs.items())])
    if common:
        raise PotuneError(
            f"every trial of iteration {iteration} ({len(rows)}) failed with the same Python exception while "
            f"predicting: {common}. That is not a property of the hyperparameters (check the installation, "
            f"the data and the validate logs, e.g. {Path(sorted(trial_dirs.values())[0][0]) / 'validate.log'}); "
            "the search stops here"
        )
    table = append_rows(prev, rows, names)
    write_table(out_table, table)
    for r in rows:
        if r["status"] == "ok" and r.get("n_folds", 1) > 1:
            say(
                f"trial {r['trial_id']}: mean over {r['n_folds']} folds: loss {r['loss']:.5g}  "
                f"E {r['energy_rmse_mev']:.2f} meV/atom  F {r['force_rmse']:.4f} eV/A  (fit {r['fit_time_s']:.0f} s)"
            )
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


def trial_exception(fold_dirs: Sequence[str | os.PathLike], name: str) -> str | None:
    """``Type: message`` of the Python exception that failed a trial (its first failing
    fold's ``name``, e.g. valid.json), or ``None`` (it succeeded, or failed otherwise)."""
    for d in fold_dirs:
        f = Path(d) / name
        res = read_json(f) if f.exists() else {}
        if res.get("status", "ok") != "ok":
            return res.get("exception") or None
    return None


def same_exception(exceptions: Sequence[str | None]) -> str | None:
    """The exception when every one of two or more trials failed with the same Python
    exception type and message (an error of the setup, not of the hyperparameters)."""
    if len(exceptions) >= 2 and all(exceptions) and len(set(exceptions)) == 1:
        return exceptions[0]
    return None
