"""Resuming a run whose Snakemake driver was killed (kill -9, lost session) on a cluster.

Its SLURM jobs go on without it: those that finish clear their own incomplete markers (the
job's Snakemake does that), so a new driver sees their results as done. Those still pending
or running when the new driver starts would be submitted a second time. Before building
its DAG the new driver therefore waits for them (:func:`wait_for_previous_jobs`), found
from the external job ids Snakemake records in its incomplete markers
(``.snakemake/incomplete/``, one file per output, named by its base64-encoded path), and
from the SLURM job ids unfinished fits wrote into their ``attempts.jsonl``.

Not covered: a driver killed in the instant between ``sbatch`` returning and Snakemake
recording the job id; that job is unknown to the next driver until it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from base64 import urlsafe_b64decode
from collections.abc import Callable, Sequence
from pathlib import Path

#: options with which Snakemake runs no job (nothing to wait for)
NO_RUN_FLAGS = {
    "-n",
    "--dry-run",
    "--dryrun",
    "--unlock",
    "--cleanup-metadata",
    "--cm",
    "--lint",
    "--summary",
    "-S",
    "--detailed-summary",
    "-D",
    "--list-changes",
    "--lc",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--list-rules",
    "-l",
    "--list-target-rules",
    "--lt",
    "--report",
    "--touch",
    "-t",
}


def runs_jobs(argv: Sequence[str]) -> bool:
    """Whether a Snakemake command line will run jobs (not a dry run, --unlock, ...)."""
    for a in argv[1:]:
        if a in NO_RUN_FLAGS or a.split("=")[0] in NO_RUN_FLAGS:
            return False
        if a.startswith("-") and not a.startswith("--") and a[1:].isalpha() and "n" in a[1:]:
            return False  # combined short flags such as -np
    return True


def uses_conda(workflow) -> bool:
    """Whether a Snakemake workflow runs its jobs in conda environments (``--sdm conda``):
    then the driver's environment need not hold the fitters' programs."""
    settings = getattr(workflow, "deployment_settings", None)
    methods = getattr(settings, "deployment_method", None) or ()
    return any("conda" in str(m).lower() for m in methods)


def incomplete_outputs(workdir: str | os.PathLike) -> dict[str, str | None]:
    """``{output path: external job id or None}`` of Snakemake's incomplete markers."""
    base = Path(workdir) / ".snakemake" / "incomplete"
    out: dict[str, str | None] = {}
    if not base.is_dir():
        return out
    for f in base.rglob("*"):
        if not f.is_file() or f.name == "migration_underway":
            continue
        b64 = "".join(p[1:] if p.startswith("@") else p for p in f.relative_to(base).parts)
        try:
            key = urlsafe_b64decode(b64.encode()).decode()
            rec = json.loads(f.read_text() or "{}")
        except (ValueError, OSError):
            continue
        out[key] = rec.get("external_jobid") if isinstance(rec, dict) else None
    return out


def previous_jobs(workdir: str | os.PathLike, run_dir: str | os.PathLike) -> dict[str, list[str]]:
    """``{external job id: [outputs]}`` of incomplete jobs whose outputs lie in ``run_dir``."""
    workdir = Path(workdir).resolve()
    root = (workdir / run_dir).resolve()
    jobs: dict[str, list[str]] = {}
    for key, jid in incomplete_outputs(workdir).items():
        if not jid:
            continue
        path = (workdir / key).resolve()
        if path == root or root in path.parents:
            jobs.setdefault(str(jid), []).append(key)
    # fits record their SLURM job id when they start (attempts.jsonl): unfinished ones count too
    for f in root.glob("iter*/t*/fold*/attempts.jsonl"):
        if (f.parent / "fit.json").exists():
            continue
        try:
            last = json.loads(f.read_text().splitlines()[-1])
        except (ValueError, IndexError, OSError):
            continue
        if last.get("slurm_job_id"):
            jobs.setdefault(str(last["slurm_job_id"]), []).append(str(f.parent / "fit.json"))
    return jobs


def alive_slurm_jobs(job_ids: Sequence[str]) -> set[str] | None:
    """The ids among ``job_ids`` that SLURM still has pending or running; ``None`` when
    SLURM cannot be asked (no squeue, or it fails)."""
    if not job_ids:
        return set()
    if not shutil.which("squeue"):
        return None
    try:
        proc = subprocess.run(["squeue", "--me", "-h", "-o", "%i"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    queued = {ln.strip() for ln in proc.stdout.split()}
    return {j for j in job_ids if j.split("_")[0] in queued or j in queued}


def wait_for_previous_jobs(
    workdir: str | os.PathLike,
    run_dir: str | os.PathLike,
    say: Callable[[str], None] = print,
    poll_s: float = 5.0,
    max_wait_s: float | None = None,
) -> list[str]:
    """Wait until no SLURM job of an earlier driver of this run is pending or running.

    Returns the ids waited for. Gives up (with a message) when SLURM cannot be asked or
    after ``max_wait_s``.
    """
    jobs = previous_jobs(workdir, run_dir)
    if not jobs:
        return []
    alive = alive_slurm_jobs(list(jobs))
    if alive is None:
        say(
            f"{len(jobs)} job(s) of an earlier driver of {run_dir} are marked incomplete but SLURM "
            f"cannot be asked about them (squeue); they will be run again"
        )
        return []
    if not alive:
        return []
    waited = sorted(alive)
    say(
        f"{len(alive)} SLURM job(s) of an earlier driver of this run are still queued or running "
        f"({', '.join(waited)}); waiting for them to finish so that none is submitted twice "
        f"(or stop this and `scancel {' '.join(waited)}`)"
    )
    t0 = time.monotonic()
    while alive:
        if max_wait_s is not None and time.monotonic() - t0 > max_wait_s:
            say(f"gave up waiting for SLURM job(s) {', '.join(sorted(alive))}")
            break
        time.sleep(poll_s)
        now = alive_slurm_jobs(list(alive))
        if now is None:
            say("SLURM cannot be asked any more (squeue); not waiting")
            break
        alive = now
    # a job ends with its outputs written; give a shared file system a moment
    time.sleep(min(poll_s, 2.0))
    say("the earlier driver's SLURM jobs have ended")
    return waited


#: the file a driver holds in its run folder while it runs (pid, host, working directory)
DRIVER_LOCK = ".potune-driver.lock"


class DriverLockError(RuntimeError):
    """Another driver holds the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_driver_lock(run_dir: str | os.PathLike, workdir: str | os.PathLike | None = None) -> Path:
    """Hold ``run_dir/.potune-driver.lock`` for this process, or raise :class:`DriverLockError`
    naming the driver that holds it.

    Snakemake locks its working directory, so a second driver started from *another*
    directory on the same results folder is not stopped by Snakemake and would run the same
    jobs into the same files. The lock names the holder's pid, host and working directory;
    one left by a driver that died on this host (kill -9) is taken over; one from another
    host is removed by ``snakemake --unlock`` (:func:`release_driver_lock`, ``force=True``).
    The caller releases it at exit (:func:`release_driver_lock`)."""
    import socket

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / DRIVER_LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "cwd": str(Path(workdir or os.getcwd()).resolve())}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            pid, host = holder.get("pid"), holder.get("host")
            if isinstance(pid, int) and host == me["host"] and (pid == me["pid"] or not _alive(pid)):
                lock.unlink(missing_ok=True)  # ours, or its driver died (kill -9): take it over
                continue
            raise DriverLockError(
                f"another driver is running this search: {run_dir} is held by pid {pid} on host "
                f"{host}, started in {holder.get('cwd')} ({lock}). Wait for it to end; if no driver "
                f"runs, run `snakemake --unlock` with the same config (or delete {lock})"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump({**me, "started": time.time()}, fh)
        return lock
    raise DriverLockError(f"{lock}: could not be created")


def release_driver_lock(run_dir: str | os.PathLike, force: bool = False) -> None:
    """Remove the driver lock of ``run_dir`` if this process holds it (or ``force``)."""
    lock = Path(run_dir) / DRIVER_LOCK
    try:
        holder = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if force or holder.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)
