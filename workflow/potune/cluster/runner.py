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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class Orphaned(RuntimeError):
    """The process that started this one ended (e.g. a Snakemake driver killed with -9):
    the program was stopped and nothing should be recorded."""


@dataclass
class RunResult:
    returncode: int | None
    status: str  # "ok" or "failed"
    reason: str  # empty when ok
    wall_s: float
    peak_rss_mb: float


def _abort_message(lines: list[str]) -> str:
    """The message of a Fortran ``SYSTEM ABORT`` (gap_fit): the lines after it that are
    not traceback locations or floating-point notes."""
    for i in range(len(lines) - 1, -1, -1):
        if "SYSTEM ABORT" in lines[i]:
            msg = [
                ln for ln in lines[i + 1 :] if not ln.startswith(("File ", "Note:", "STOP")) and "Traceback" not in ln
            ]
            return " ".join(msg[:2]).strip()
    return ""


def _tail_errors(log_path: Path, n: int = 3) -> str:
    """The most telling lines of a log: a SYSTEM ABORT's message, else lines with
    ERROR/abort/killed, else its last lines."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    abort = _abort_message(lines)
    if abort:
        return abort[:500]
    keys = ("error", "abort", "fatal", "failed", "cannot", "segmentation", "killed", "exception")
    hits = [ln for ln in lines if any(k in ln.lower() for k in keys)]
    chosen = hits[-n:] if hits else lines[-n:]
    return " | ".join(chosen)[:500]


#: virtual memory allowed beyond the resident-memory limit (RLIMIT_AS backstop, MB):
#: gap_fit maps ~350 MB more address space than it uses (measured VmPeak - VmHWM), its
#: Python launcher ~450 MB
VIRTUAL_SLACK_MB = 1024.0
#: how often the resident memory of the fit's processes is sampled (s)
POLL_S = 0.1


def _group_memory_kb(pgid: int) -> tuple[int, int]:
    """(resident, virtual) memory in kB summed over the processes of group ``pgid``."""
    rss = vm = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                stat = fh.read()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            with open(f"/proc/{d}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmSize:"):
                        vm += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return rss, vm


def run_limited(
    cmd: Sequence[str],
    log_path: str | os.PathLike,
    timeout_s: float | None = None,
    mem_limit_mb: float | None = None,
    cwd: str | os.PathLike | None = None,
    env: dict | None = None,
    stop_if_orphaned: bool = True,
) -> RunResult:
    """Run ``cmd``; stdout and stderr go to ``log_path``.

    Parameters
    ----------
    timeout_s
        Wall-clock limit; the whole process group is killed when it is exceeded and the
        result says "time limit ... exceeded".
    mem_limit_mb
        Resident-memory limit of the program and its children (what a scheduler's cgroup
        counts). It is sampled every :data:`POLL_S` s and the process group killed when
        over it; an address-space limit (``RLIMIT_AS``) :data:`VIRTUAL_SLACK_MB` above it
        makes a much larger allocation fail at once. Either way the result says
        "out of memory". (``RLIMIT_AS`` alone at the limit would fail fits that fit:
        gap_fit's address space is ~350 MB larger than its resident memory.)
    stop_if_orphaned
        Kill the program and raise :class:`Orphaned` when this process's parent ends (a
        local Snakemake job whose driver was killed): a fit nobody waits for must not go on
        writing into a run that is resumed.

    Returns
    -------
    RunResult
        Never raises for a failing program: the failure is in ``status``/``reason``.
        ``peak_rss_mb`` is the largest sampled resident memory of the process group (or
        the kernel's figure for the child, if larger).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    as_limit = int((float(mem_limit_mb) + VIRTUAL_SLACK_MB) * 1024 * 1024) if mem_limit_mb else None

    def _limits() -> None:  # runs in the child before exec
        if as_limit:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    t0 = time.monotonic()
    parent = os.getppid()
    killed_for = ""
    peak_kb = peak_vm_kb = 0
    ru_kb = 0
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
        except OSError as exc:  # not found, not executable: never retried as if killed for memory
            why = {FileNotFoundError: "not found", PermissionError: "not executable"}.get(type(exc), "cannot start")
            log.write(f"# potune: could not start {cmd[0]} ({why}): {exc}\n")
            return RunResult(None, "failed", f"could not start {cmd[0]} ({why}): {exc}", 0.0, 0.0)
        try:
            while True:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    ru_kb = ru.ru_maxrss
                    break
                rss, vm = _group_memory_kb(proc.pid)
                peak_kb, peak_vm_kb = max(peak_kb, rss), max(peak_vm_kb, vm)
                if not killed_for:
                    if mem_limit_mb and rss > mem_limit_mb * 1024:
                        killed_for = "memory"
                    elif timeout_s is not None and time.monotonic() - t0 > timeout_s:
                        killed_for = "time"
                    elif stop_if_orphaned and os.getppid() != parent:
                        raise Orphaned(f"the process that started {cmd[0]} (pid {parent}) ended")
                    if killed_for:
                        os.killpg(proc.pid, signal.SIGKILL)
                time.sleep(POLL_S)
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            raise
        finally:
            # children that outlived the main process (none expected) go with it
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    rc = proc.returncode
    wall = time.monotonic() - t0
    peak = max(peak_kb, ru_kb) / 1024.0
    name = Path(str(cmd[0])).name
    if killed_for == "time":
        return RunResult(rc, "failed", f"time limit of {timeout_s:.3g} s exceeded", wall, peak)
    if killed_for == "memory":
        return RunResult(
            rc, "failed", f"out of memory: {name} used more than the limit of {mem_limit_mb:.0f} MB", wall, peak
        )
    if rc == 0:
        return RunResult(rc, "ok", "", wall, peak)
    detail = _tail_errors(log_path)
    text = detail.lower()
    oom_words = ("memory", "allocat", "bad_alloc", "cannot allocate")
    near_limit = bool(as_limit) and peak_vm_kb * 1024 > 0.8 * as_limit
    if mem_limit_mb and (any(w in text for w in oom_words) or near_limit):
        reason = (
            f"out of memory: {name} could not allocate within the limit of {mem_limit_mb:.0f} MB "
            f"resident / {as_limit / 1024**2:.0f} MB virtual: {detail}"
        )
    elif rc is not None and rc < 0:
        reason = f"{name} killed by signal {-rc} ({signal.Signals(-rc).name}): {detail}"
    else:
        reason = f"{name} exited with code {rc}: {detail}"
    return RunResult(rc, "failed", reason, wall, peak)
