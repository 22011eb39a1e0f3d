"""Run an external program with a time limit and a memory limit, capturing its log.

A fit that crashes, runs out of memory or out of time must become a *failed trial* with a
reason, written before a scheduler would kill the job. The limits are enforced here, inside
the job, a little under what the job was granted.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass
class RunResult:
    returncode: int | None
    status: str  # "ok" or "failed"
    reason: str  # empty when ok
    wall_s: float
    peak_rss_mb: float


def _tail_errors(log_path: Path, n: int = 3) -> str:
    """The most telling lines of a log: lines with ERROR/abort/killed, else its last lines."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    keys = ("error", "abort", "fatal", "failed", "cannot", "segmentation", "killed", "exception")
    hits = [ln for ln in lines if any(k in ln.lower() for k in keys)]
    chosen = hits[-n:] if hits else lines[-n:]
    return " | ".join(chosen)[:500]


def run_limited(
    cmd: Sequence[str],
    log_path: str | os.PathLike,
    timeout_s: float | None = None,
    mem_limit_mb: float | None = None,
    cwd: str | os.PathLike | None = None,
    env: dict | None = None,
) -> RunResult:
    """Run ``cmd``; stdout and stderr go to ``log_path``.

    Parameters
    ----------
    timeout_s
        Wall-clock limit; the whole process group is killed when it is exceeded and the
        result says "time limit ... exceeded".
    mem_limit_mb
        Address-space limit (``RLIMIT_AS``) of the child; an allocation beyond it fails and
        the result says "out of memory".

    Returns
    -------
    RunResult
        Never raises for a failing program: the failure is in ``status``/``reason``.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def _limits() -> None:  # runs in the child before exec
        if mem_limit_mb:
            lim = int(mem_limit_mb * 1024 * 1024)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    t0 = time.monotonic()
    timed_out = False
    with open(log_path, "w") as log:
        log.write("# " + " ".join(str(c) for c in cmd) + "\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                preexec_fn=_limits,
                start_new_session=True,
            )
        except OSError as exc:
            return RunResult(None, "failed", f"could not start {cmd[0]}: {exc}", 0.0, 0.0)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    wall = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if timed_out:
        return RunResult(rc, "failed", f"time limit of {timeout_s:.0f} s exceeded", wall, peak)
    if rc == 0:
        return RunResult(rc, "ok", "", wall, peak)
    detail = _tail_errors(log_path)
    text = detail.lower()
    oom_words = ("memory", "allocat", "bad_alloc", "cannot allocate")
    near_limit = bool(mem_limit_mb) and peak > 0.8 * float(mem_limit_mb)
    if mem_limit_mb and (any(w in text for w in oom_words) or (rc is not None and rc < 0 and near_limit)):
        reason = f"out of memory (limit {mem_limit_mb:.0f} MB): {detail}"
    elif rc is not None and rc < 0:
        reason = f"{Path(str(cmd[0])).name} killed by signal {-rc} ({signal.Signals(-rc).name}): {detail}"
    else:
        reason = f"{Path(str(cmd[0])).name} exited with code {rc}: {detail}"
    return RunResult(rc, "failed", reason, wall, peak)
