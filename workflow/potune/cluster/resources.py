"""Resources of the fit jobs: memory estimated from the proposal's hyperparameters and the
training set, runtime from the configuration, both scaled by the attempt number; and the
limits a fit enforces on itself so that its failure is recorded before a scheduler kills it.

The GAP memory model mirrors the "Memory Estimate" that ``gap_fit`` prints (descriptor
arrays ``x``/``xPrime`` and the covariance matrices ``yY``/``A``), calibrated against
measured peak RSS of real ``gap_fit`` runs (``benchmarks/gap_memory.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path

from ..data.stats import dataset_stats

#: resident memory of the Python process around the fit (the rule's script) in MB
SCRIPT_MB = 250.0


#: the request is the estimate times this, rounded up to 100 MB
SAFETY = 1.25


#: memory request of a fitter without a memory model (MB)
FALLBACK_MB = 4000


#: a fit stops itself at this fraction of the job's memory
MEM_LIMIT_FRACTION = 0.95


def estimate_fit_mem_mb(fitter: str, params: Mapping, settings: Mapping, train_file: str | os.PathLike) -> int:
    """Memory to request for one fit (MB, attempt 1): the fit program's expected peak plus
    the script around it, divided by :data:`MEM_LIMIT_FRACTION`, times :data:`SAFETY`,
    rounded up to 100 MB. Fitters without a memory model get :data:`FALLBACK_MB`."""
    from ..fitters import FITTERS, get_fitter

    model = getattr(get_fitter(fitter), "peak_mem_mb", None) if fitter in FITTERS else None
    if model is None:
        return FALLBACK_MB
    peak = model(params, settings, dataset_stats(train_file))
    need = (peak + SCRIPT_MB) / MEM_LIMIT_FRACTION * SAFETY
    return int(math.ceil(need / 100.0) * 100)


def fit_mem_mb(
    res_cfg: Mapping, fitter: str, params: Mapping, settings: Mapping, train_file: str | os.PathLike, attempt: int = 1
) -> int:
    """``mem_mb`` of a fit job: ``res_cfg['mem_mb']`` (an integer, or ``auto`` for the
    estimate, capped at ``mem_mb_max``) times the attempt number."""
    mem = res_cfg.get("mem_mb", "auto")
    if mem == "auto":
        mem = estimate_fit_mem_mb(fitter, params, settings, train_file)
        cap = res_cfg.get("mem_mb_max")
        if cap:
            mem = min(mem, int(cap))
    return int(mem) * max(1, int(attempt))


def runtime_min(res_cfg: Mapping, attempt: int = 1) -> int:
    """``runtime`` of a job in whole minutes (what a scheduler is asked for), times the
    attempt number."""
    return int(math.ceil(float(res_cfg["runtime"]) * max(1, int(attempt))))


def runtime_ms(res_cfg: Mapping, attempt: int = 1) -> int:
    """``runtime`` of a job in milliseconds (fractional minutes kept: Snakemake resources are
    integers), times the attempt number."""
    return int(round(float(res_cfg["runtime"]) * 60000.0 * max(1, int(attempt))))


def time_limit_s(runtime_minutes: float) -> float:
    """Wall-clock limit a fit enforces on itself for a job granted ``runtime_minutes``:
    5 % less, at least 30 s less (but never less than half), to leave the job time to
    record the failure."""
    total = float(runtime_minutes) * 60.0
    margin = min(max(0.05 * total, 30.0), 0.5 * total)
    return total - margin


def mem_limit_mb(job_mem_mb: float, script_rss_mb: float = 0.0) -> float:
    """Resident memory the fit program may use in a job granted ``job_mem_mb``: the job's
    memory times :data:`MEM_LIMIT_FRACTION` less what the calling process already holds
    (at least a tenth of the job's memory)."""
    return max(0.1 * float(job_mem_mb), MEM_LIMIT_FRACTION * float(job_mem_mb) - float(script_rss_mb))


def current_rss_mb() -> float:
    """Resident memory of this process now (MB; 0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def job_mem_mb(
    res_cfg: Mapping,
    fitter: str,
    settings: Mapping,
    params_file: str | os.PathLike | None,
    train_file: str | os.PathLike | None,
    attempt: int = 1,
) -> int:
    """``mem_mb`` of a job from its resource section. With ``mem_mb: auto`` the
    hyperparameters come from ``params_file`` (a proposal ``t<k>.yaml`` or ``best.yaml``:
    ``fixed`` updated with ``point``); until that file and ``train_file`` exist (Snakemake
    evaluates resources again when the job is ready) the request is a placeholder."""
    from ..io import read_yaml

    if res_cfg.get("mem_mb", "auto") != "auto":
        return int(res_cfg["mem_mb"]) * max(1, int(attempt))
    if not params_file or not train_file or not Path(params_file).exists() or not Path(train_file).exists():
        return FALLBACK_MB * max(1, int(attempt))
    doc = read_yaml(params_file)
    hp = {**(doc.get("fixed") or {}), **(doc.get("point") or {})}
    return fit_mem_mb(res_cfg, fitter, hp, settings, train_file, attempt)


@contextmanager
def memory_guard(limit_mb: float | None, on_exceed: Callable[[float], None], poll_s: float = 0.1):
    """Keep in-process work (a validation predicting with quippy or LAMMPS) within
    ``limit_mb`` of resident memory, as :func:`potune.cluster.runner.run_limited` keeps a fit
    program: a thread samples this process's memory every ``poll_s`` s and, once over the
    limit, calls ``on_exceed(rss_mb)`` (which records the failure) and ends the process
    (exit code 0: the failure is recorded, like a fit's). A peak over the limit between two
    samples raises :class:`MemoryError` when the work ends. ``None``: no limit."""
    import resource
    import threading

    if not limit_mb:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll_s):
            rss = current_rss_mb()
            if rss > limit_mb:
                on_exceed(rss)
                os._exit(0)

    thread = threading.Thread(target=watch, name="potune-memory-guard", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if peak > limit_mb:
        raise MemoryError(f"out of memory: peak resident memory {peak:.0f} MB over the limit of {limit_mb:.0f} MB")
