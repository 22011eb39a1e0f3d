"""The attempts of a job: each attempt of a fit appends itself to ``attempts.jsonl``, and a
trial whose every attempt was killed from outside is recorded with what the scheduler
(SLURM's ``sacct``) says of each.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path


def record_attempt(path: Path, attempt: int, mem_mb, runtime_min) -> list[dict]:
    """Append this attempt to ``attempts.jsonl`` (beside the fit's outputs, so it survives
    Snakemake's clean-up of a failed job); return the attempts of the current series."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "attempt": int(attempt),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.time(),
        "mem_mb": mem_mb,
        "runtime_min": runtime_min,
    }
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    entries = []
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("attempt") == 1 and "event" not in e:
            entries = []  # a new series (the job was started afresh)
        entries.append(e)
    return entries


def slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """SLURM's final state of finished jobs (``sacct``), ``{}`` where it cannot be asked."""
    import shutil
    import subprocess

    if not job_ids or not shutil.which("sacct"):
        return {}
    try:
        proc = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if proc.returncode != 0:
        return {}
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def record_error(path: Path, attempt: int, text: str) -> None:
    """Note in ``attempts.jsonl`` that this attempt ended with an error of potune's own code
    (a traceback), so that the last attempt raises it again instead of recording the trial
    as killed from outside."""
    entry = {"attempt": int(attempt), "event": "error", "error": text[-4000:], "pid": os.getpid()}
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def last_attempt_reason(
    path: Path, attempt: int, max_attempts: int | None, mem_mb, runtime_min, what: str = "fit"
) -> str | None:
    """Record this attempt of a job; on the last attempt (when there were retries) return
    why the job is recorded as failed without running again, else ``None``.

    A job that fails inside records its failure and ends normally, so an attempt after the
    first means the earlier ones were killed from outside (scheduler, OOM killer, a
    segfault of an in-process library). ``what`` names the ``resources`` section to raise.

    Raises
    ------
    PotuneError
        An earlier attempt ended with an error of potune's own code: retrying did not help
        and recording a failed trial would hide a bug.
    """
    from ..errors import PotuneError

    history = record_attempt(path, attempt, mem_mb, runtime_min)
    errors = [e for e in history if e.get("event") == "error" and e.get("attempt", 0) < attempt]
    if not (max_attempts and max_attempts > 1 and attempt >= max_attempts):
        return None
    if errors:
        raise PotuneError(
            f"{path.parent}: attempt {errors[-1]['attempt']} failed with an error of potune, not of the fitter "
            f"(not recorded as a failed trial):\n{errors[-1]['error']}"
        )
    return killed_reason(history, attempt, what, crash_note(path))


def crash_log(path: Path) -> Path:
    """Where :func:`guarded_attempt` dumps fatal signals: ``<attempts file>.crash.log``."""
    return path.with_suffix(".crash.log")


@contextmanager
def guarded_attempt(path: Path, attempt: int):
    """Run a job's in-process work so that its end is known to the next attempt: a fatal
    signal (segfault, abort) dumps the Python traceback to ``crash.log`` beside
    ``attempts.jsonl`` (:func:`crash_log`, written by :mod:`faulthandler`), and an exception that is not the fitter's
    (:func:`potune.errors.is_fitter_failure`) is noted with :func:`record_error` and
    raised."""
    import faulthandler
    import traceback

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(crash_log(path), "w" if int(attempt) == 1 else "a") as crash:
        crash.write(f"# attempt {attempt} (pid {os.getpid()})\n")
        crash.flush()
        faulthandler.enable(file=crash)
        try:
            yield
        except Exception:
            record_error(path, attempt, traceback.format_exc())
            raise
        finally:
            faulthandler.disable()


def crash_note(path: Path) -> str:
    """The fatal signals :func:`crash_log` recorded (e.g. "Segmentation fault"), or ''."""
    try:
        lines = crash_log(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    fatal = [ln.split("Fatal Python error:", 1)[1].strip() for ln in lines if "Fatal Python error:" in ln]
    return "; ".join(dict.fromkeys(fatal))


def killed_reason(history: list[dict], attempt: int, what: str = "fit", crash: str = "") -> str:
    """Why a trial is recorded as failed on its last attempt: the earlier attempts' fates."""
    earlier = [e for e in history if e.get("attempt", 0) < attempt and "event" not in e]
    states = slurm_states([e["slurm_job_id"] for e in earlier if e.get("slurm_job_id")])
    words = {
        "OUT_OF_MEMORY": "out of memory",
        "TIMEOUT": "time limit",
        "NODE_FAIL": "node failure",
        "PREEMPTED": "preempted",
        "CANCELLED": "cancelled",
    }
    fates = []
    for e in earlier:
        jid = e.get("slurm_job_id")
        state = states.get(jid, "") if jid else ""
        fate = words.get(state.split()[0] if state else "", state.lower() or "killed")
        where = f"SLURM job {jid}" if jid else f"pid {e.get('pid')}"
        fates.append(f"attempt {e['attempt']} ({where}, {e.get('mem_mb')} MB, {e.get('runtime_min')} min): {fate}")
    n = len(earlier) or attempt - 1
    return (
        f"killed from outside on {n} attempt(s), no result recorded"
        + (": " + "; ".join(fates) if fates else "")
        + (f"; the process died of: {crash}" if crash else "")
        + f" (raise resources.{what}.mem_mb/runtime or check the scheduler's logs)"
    )
