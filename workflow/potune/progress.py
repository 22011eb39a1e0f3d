"""Quiet progress of a search, read from its run folder (``<results_dir>/<run_name>/``).

``python -m potune.run`` (:mod:`potune.run`) starts Snakemake with its output in a log file
and prints the lines made here: one per event worth seeing (an iteration proposed, a trial
finished or failed, the refit and the test of the best), each with the trials done out of
the budget, the best loss so far, the time used and an estimate of the time left; then a few
final lines. Everything is read from the files the jobs write (``iter<N>/proposals/meta.yaml``,
``iter<N>/t<k>/fold<f>/{fit,valid}.json``, ``best/{fit,test_metrics}.json``, ``trials.csv``,
``summary.md``), so the watcher needs nothing from Snakemake.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io import read_json, read_yaml

_ITER = re.compile(r"iter(\d+)$")
_TRIAL = re.compile(r"t(\d+)$")


@dataclass(frozen=True)
class TrialResult:
    """One finished trial (every fold validated): fold means of its errors, the fit time
    summed over folds."""

    trial_id: str
    iteration: int
    status: str
    loss: float
    energy_rmse_mev: float
    force_rmse: float
    fit_s: float
    reason: str = ""
    #: mtime of its last valid.json
    finished_at: float = 0.0
    #: from the start of its first fit job (last attempt) to its last validation (NaN: unknown)
    wall_s: float = math.nan


def _iterations(run_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for d in run_dir.glob("iter*"):
        m = _ITER.match(d.name)
        if m and d.is_dir():
            out.append((int(m.group(1)), d))
    return sorted(out)


def _read(path: Path, reader=read_json) -> dict | None:
    """A result file, or None while it is missing or being written (a job writes atomically,
    but a file removed under the watcher is not its error)."""
    try:
        data = reader(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _started(fold_dir: Path) -> float | None:
    """When the last attempt of a fold's fit job started (``attempts.jsonl``)."""
    import json

    try:
        lines = (fold_dir / "attempts.jsonl").read_text().splitlines()
        return float(json.loads(lines[-1])["started"]) if lines else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def proposed(run_dir: str | os.PathLike) -> dict[int, tuple[int, float]]:
    """Iteration -> (number of trials proposed, when) from ``iter<N>/proposals/meta.yaml``."""
    out = {}
    for it, d in _iterations(Path(run_dir)):
        f = d / "proposals" / "meta.yaml"
        meta = _read(f, read_yaml)
        if meta is not None and "n_trials" in meta:
            out[it] = (int(meta["n_trials"]), _mtime(f))
    return out


def finished_trials(run_dir: str | os.PathLike, n_folds: int, skip=()) -> dict[str, TrialResult]:
    """Trial id -> :class:`TrialResult` of every trial whose ``n_folds`` folds are validated
    (``fold<f>/valid.json`` and ``fit.json`` present). A trial fails when any fold failed;
    its loss and RMSEs are the means over folds, as in the trial table. Trials whose id is in
    ``skip`` (already known to the caller: a finished trial does not change) are not read.
    A nested SNAP trial ranked by its inner CV loss (``snap.outer_loss: cv``) shows that loss
    and its errors (:func:`potune.trials.cv_ranked`), as the trial table does."""
    from .trials import cv_ranked

    out = {}
    for it, d in _iterations(Path(run_dir)):
        for t in sorted(d.glob("t*")):
            if not _TRIAL.match(t.name) or f"{it}-{t.name[1:]}" in skip:
                continue
            fits = [_read(t / f"fold{f}" / "fit.json") for f in range(n_folds)]
            valids = [_read(t / f"fold{f}" / "valid.json") for f in range(n_folds)]
            if any(x is None for x in fits + valids):
                continue
            trial_id = str(fits[0].get("trial_id", f"{it}-{t.name[1:]}"))
            fit_s = float(sum(float(f.get("wall_s") or 0.0) for f in fits))
            when = max(_mtime(t / f"fold{f}" / "valid.json") for f in range(n_folds))
            starts = [x for x in (_started(t / f"fold{f}") for f in range(n_folds)) if x is not None]
            wall = when - min(starts) if starts else math.nan
            failed = [v for v in valids if v.get("status") != "ok"]
            if failed:
                reason = str(failed[0].get("reason", ""))
                out[trial_id] = TrialResult(
                    trial_id, it, "failed", math.nan, math.nan, math.nan, fit_s, reason, when, wall
                )
            else:
                mean = {
                    k: sum(float(v[k]) for v in valids) / n_folds for k in ("loss", "energy_rmse_mev", "force_rmse")
                }
                mean = (cv_ranked(fits[0]) if n_folds == 1 else None) or mean  # snap.outer_loss cv
                e, f = mean["energy_rmse_mev"], mean["force_rmse"]
                out[trial_id] = TrialResult(trial_id, it, "ok", mean["loss"], e, f, fit_s, "", when, wall)
    return out


def best_of(trials: dict[str, TrialResult]) -> TrialResult | None:
    """The successful trial with the lowest finite loss (None if there is none)."""
    ok = [t for t in trials.values() if t.status == "ok" and math.isfinite(t.loss)]
    return min(ok, key=lambda t: t.loss) if ok else None


def eta_s(
    n_done: int, budget: int | None, mean_trial_s: float | None, slots: int, refit_left: bool = True
) -> float | None:
    """Seconds left, roughly: the trials left times the mean wall time of a finished trial
    (from its fit job's start to its validation's end) over the trials that run at once
    (``slots``), plus one trial's time for the refit of the best and its test.
    None when unknown (no budget, or no trial finished yet)."""
    if budget is None or mean_trial_s is None or not math.isfinite(mean_trial_s):
        return None
    left = max(budget - n_done, 0)
    return left * mean_trial_s / max(slots, 1) + (mean_trial_s if refit_left else 0.0)


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def status_text(
    trials: dict[str, TrialResult], budget: int | None, elapsed_s: float, slots: int, refit_left: bool = True
) -> str:
    """The state shared by every progress line: ``trials 3/12, best 0.1318 (1-01), 2 min 05 s
    used, ~4 min 10 s left``."""
    best = best_of(trials)
    n = len(trials)
    done = f"trials {n}/{budget}" if budget else f"trials {n}"
    best_txt = f"best {best.loss:.5g} ({best.trial_id})" if best else "best -"
    walls = [t.wall_s if math.isfinite(t.wall_s) else t.fit_s for t in trials.values()]
    walls = [w for w in walls if w > 0]
    mean = sum(walls) / len(walls) if walls else None
    left = eta_s(n, budget, mean, slots, refit_left)
    return f"{done}, {best_txt}, {duration(elapsed_s)} used, ~{duration(left)} left"


def trial_text(t: TrialResult) -> str:
    """What a finished trial scored (or why it failed)."""
    if t.status != "ok":
        reason = " ".join(str(t.reason).split())
        return f"trial {t.trial_id} FAILED ({reason[:120]})"
    return (
        f"trial {t.trial_id}: loss {t.loss:.5g} (E {t.energy_rmse_mev:.2f} meV/atom, "
        f"F {t.force_rmse:.4f} eV/A, fit {t.fit_s:.0f} s)"
    )


def warning_lines(summary_md: str | os.PathLike) -> list[str]:
    """The ``Warning`` lines of ``summary.md`` (markdown emphasis removed)."""
    p = Path(summary_md)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(errors="replace").splitlines():
        plain = line.replace("**", "").strip()
        if plain.lower().startswith("warning"):
            out.append(plain)
    return out


@dataclass
class Watcher:
    """Turns the changes of a run folder into progress lines.

    Files present when the watcher starts (a resumed or extended search) are counted but not
    announced; ``best/`` files count only when written after the start.

    Parameters
    ----------
    run_dir
        ``<results_dir>/<run_name>``.
    n_folds
        Validation folds of every trial.
    budget
        The most trials the stop rules allow (None: unknown).
    slots
        Fits that run at once (free cores over the threads of a fit).
    start
        ``time.time()`` when the run started.
    """

    run_dir: Path
    n_folds: int = 1
    budget: int | None = None
    slots: int = 1
    start: float = field(default_factory=time.time)
    _proposed: set = field(default_factory=set)
    _trials: dict = field(default_factory=dict)
    _seen: set = field(default_factory=set)
    _primed: bool = False
    _refit_at: float = math.inf

    def _new_best_file(self, name: str) -> tuple[dict, float] | None:
        """A ``best/`` result written since the start and not yet announced, with its mtime."""
        p = self.run_dir / "best" / name
        when = _mtime(p)
        if when < self.start - 1.0 or name in self._seen:
            return None
        data = _read(p)
        if data is None:
            return None
        self._seen.add(name)
        return data, when

    def poll(self, now: float | None = None) -> list[str]:
        """Progress lines of what happened since the last call, in the order it happened,
        each with the state of the search at that moment (:func:`status_text`)."""
        now = time.time() if now is None else now
        fresh = self.start - 1.0
        events: list[tuple[float, str]] = []
        earlier = 0
        for it, (n, when) in proposed(self.run_dir).items():
            if it not in self._proposed:
                self._proposed.add(it)
                if when >= fresh:
                    events.append((when, f"iteration {it}: {n} trial(s) proposed"))
        for tid, t in finished_trials(self.run_dir, self.n_folds, skip=self._trials).items():
            if tid not in self._trials:
                self._trials[tid] = t
                if t.finished_at >= fresh:
                    events.append((t.finished_at, trial_text(t)))
                else:
                    earlier += 1
        refit = self._new_best_file("fit.json")
        if refit is not None:
            data, self._refit_at = refit
            what = "done" if data.get("status") == "ok" else f"FAILED ({str(data.get('reason', ''))[:120]})"
            wall = float(data.get("wall_s") or 0)
            events.append((self._refit_at, f"refit of the {data.get('trial_id', 'best')}: {what} (fit {wall:.0f} s)"))
        test = self._new_best_file("test_metrics.json")
        if test is not None:
            events.append((test[1], test_text(test[0])))
        lines = []
        if not self._primed and earlier:
            lines.append(f"resuming: {earlier} trial(s) done before this run")
        self._primed = True
        for when, text in sorted(events, key=lambda e: e[0]):
            at = min(when, now)
            done = {k: t for k, t in self._trials.items() if t.finished_at <= at}
            state = status_text(done, self.budget, at - self.start, self.slots, refit_left=at < self._refit_at)
            lines.append(f"{text} | {state}")
        if lines and not events:
            lines[-1] += " | " + status_text(self._trials, self.budget, now - self.start, self.slots)
        return lines

    def final_lines(self, log_file: str | os.PathLike, now: float | None = None) -> list[str]:
        """The closing lines of a finished run: best trial and trials done (from
        ``trials.csv``), the test errors, the warnings of ``summary.md``, where the results
        and the log are."""
        now = time.time() if now is None else now
        lines = []
        table_file = self.run_dir / "trials.csv"
        if table_file.exists():
            from .search.loop import best_trial
            from .trials import read_table

            table = read_table(table_file)
            n_failed = int((table["status"] != "ok").sum())
            best = best_trial(table)
            best_txt = (
                f"best loss {float(best['loss']):.5g} (trial {best['trial_id']})" if best else "no trial succeeded"
            )
            lines.append(
                f"done in {duration(now - self.start)}: {len(table)} trial(s)"
                + (f" of {self.budget}" if self.budget else "")
                + f", {n_failed} failed; {best_txt}"
            )
        else:
            lines.append(f"done in {duration(now - self.start)}")
        test = _read(self.run_dir / "best" / "test_metrics.json")
        if test is not None and "test_metrics.json" not in self._seen:
            lines.append(test_text(test))
        lines += warning_lines(self.run_dir / "summary.md")
        lines.append(f"results: {self.run_dir}/ (summary.md, trials.csv, best/, figures/)")
        lines.append(f"Snakemake log: {log_file}")
        return lines


def test_text(test: dict) -> str:
    """The test errors of the refitted best (or why there are none)."""
    if test.get("status") == "ok":
        return f"test set: E {float(test['energy_rmse_mev']):.2f} meV/atom, F {float(test['force_rmse']):.4f} eV/A"
    reason = test.get("reason") or test.get("status", "")
    return f"test set not evaluated ({str(reason)[:120]})"
