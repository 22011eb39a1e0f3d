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
        if e.get("attempt") == 1:
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


def killed_reason(history: list[dict], attempt: int) -> str:
    """Why a trial is recorded as failed on its last attempt: the earlier attempts' fates."""
    earlier = [e for e in history if e.get("attempt", 0) < attempt]
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
        + " (raise resources.fit.mem_mb/runtime or check the scheduler's logs)"
    )
