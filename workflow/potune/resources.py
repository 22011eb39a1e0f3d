"""Resources of the fit jobs: memory estimated from the proposal's hyperparameters and the
training set, runtime from the configuration, both scaled by the attempt number; and the
limits a fit enforces on itself so that its failure is recorded before a scheduler kills it.

The GAP memory model mirrors the "Memory Estimate" that ``gap_fit`` prints (descriptor
arrays ``x``/``xPrime`` and the covariance matrices ``yY``/``A``), calibrated against
measured peak RSS of real ``gap_fit`` runs (``benchmarks/gap_memory.py``).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

#: resident memory of ``gap_fit`` itself (binary, libraries, the training data) in MB:
#: measured 26 MB (125 atoms) to 51 MB (6607 atoms, energy only)
GAP_BASE_MB = 60.0
#: (measured peak RSS - base) / potune's array estimate: up to 1.15 where the descriptor
#: gradients dominate (Zuo Si, benchmarks/gap_memory.py: 6607 atoms SOAP 4/4 and 6/6, 13233
#: atoms 4/4, 200 sparse points); where the covariances dominate (1000 sparse points) gap_fit
#: uses less than its estimate (0.6), so the model errs on the safe side there
GAP_ARRAY_FACTOR = 1.2
#: CUR sparse-point selection (cur_points, cur_covariance) works on copies of the
#: descriptor matrix x: measured 239 MB peak for x = 33 MB (13233 Si atoms, SOAP 8/8, 500
#: sparse points, energy only, benchmarks/gap_memory.py); with GAP_BASE_MB and
#: GAP_ARRAY_FACTOR, 4.2 copies put the model 10 % above that
CUR_COPIES = 4.2
#: resident memory of the Python process around the fit (the rule's script) in MB
SCRIPT_MB = 250.0
#: the request is the estimate times this, rounded up to 100 MB
SAFETY = 1.25
#: memory request of a fitter without a memory model (MB)
FALLBACK_MB = 4000
#: neighbours within a cutoff / uniform-density estimate (measured 1.057 for Zuo 2020 Si
#: at 5 A: gap_fit's 556875 gradient rows for 6607 atoms)
NEIGHBOUR_FACTOR = 1.06
#: a fit stops itself at this fraction of the job's memory
MEM_LIMIT_FRACTION = 0.95


@dataclass(frozen=True)
class DatasetStats:
    """What the memory model needs to know about a training set.

    ``configs`` holds one ``(n_atoms, number_density)`` per structure; the density is
    ``None`` for a structure without periodic boundaries.
    """

    n_configs: int
    n_atoms: int
    n_species: int
    configs: tuple[tuple[int, float | None], ...]

    def neighbours(self, cutoff: float) -> float:
        """Sum over atoms of the number of neighbours within ``cutoff`` (Å), estimated
        from each structure's number density (bulk-like) or its size (clusters)."""
        sphere = 4.0 / 3.0 * math.pi * float(cutoff) ** 3
        total = 0.0
        for n, rho in self.configs:
            nn = (n - 1) if rho is None else min(NEIGHBOUR_FACTOR * rho * sphere, 1e9)
            total += n * nn
        return total


@functools.lru_cache(maxsize=32)
def _stats_cached(path: str, mtime_ns: int, size: int) -> DatasetStats:
    import ase.io

    frames = ase.io.read(path, ":")
    configs = []
    species: set[int] = set()
    for a in frames:
        species.update(int(z) for z in a.numbers)
        if a.pbc.any() and a.cell.rank == 3 and a.get_volume() > 0:
            configs.append((len(a), len(a) / float(a.get_volume())))
        else:
            configs.append((len(a), None))
    return DatasetStats(len(frames), sum(n for n, _ in configs), len(species), tuple(configs))


def dataset_stats(path: str | os.PathLike) -> DatasetStats:
    """:class:`DatasetStats` of an extxyz file (cached per path and modification time)."""
    st = os.stat(path)
    return _stats_cached(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def soap_dimension(n_max: int, l_max: int, n_species: int) -> int:
    """Length of a SOAP vector as gap_fit builds it (``add_species=T``: one descriptor per
    central species over all neighbour species; soap_turbo: alpha_max summed over species)."""
    n = int(n_max) * int(n_species)
    return n * (n + 1) // 2 * (int(l_max) + 1) + 1


def gap_arrays_mb(params: Mapping, settings: Mapping, stats: DatasetStats) -> dict[str, float]:
    """The arrays of gap_fit's memory estimate (MiB), for resolved hyperparameters.

    Returns ``descriptors`` (x and xPrime), ``covariances`` (2 yY + yy + 2 A) and
    ``peak`` = max(descriptors + yY, covariances), as gap_fit computes it; plus the CUR
    selection's work on copies of x (``sparse_selection``), which gap_fit leaves out and
    which dominates energy-only fits with large descriptors.
    """
    forces = not settings.get("energy_only", False)
    S = max(1, stats.n_species)
    kind = settings.get("descriptor", "soap")
    cutoff = float(params["rcut_hard"] if kind == "soap_turbo" and params.get("rcut_hard") else params["cutoff"])
    d = soap_dimension(params["n_max"], params["l_max"], S)
    n_sparse = int(params["n_sparse"]) * S  # one sparse set per central species
    rows_x = stats.n_atoms
    rows_dx = 3.0 * (stats.n_atoms + stats.neighbours(cutoff)) if forces else 0.0
    desc = 8.0 * d * (rows_x + rows_dx)
    if settings.get("two_body"):
        pairs = stats.neighbours(float(params.get("two_body_cutoff", 5.0))) / 2.0
        desc += 8.0 * (pairs + (6.0 * pairs if forces else 0.0))
        n_sparse += int(params.get("two_body_n_sparse", 20)) * S * (S + 1) // 2
    n_obs = stats.n_configs + (3 * stats.n_atoms if forces else 0)
    yY = 8.0 * n_sparse * n_obs
    A = 8.0 * n_sparse * (n_obs + n_sparse)
    cov = 2 * yY + 8.0 * n_sparse**2 + 2 * A
    cur = CUR_COPIES * 8.0 * d * rows_x if str(params.get("sparse_method", "")).startswith("cur") else 0.0
    mb = 1024.0**2
    return {"descriptors": desc / mb, "covariances": cov / mb, "sparse_selection": cur / mb,
            "peak": max(desc + max(yY, cur), cov) / mb}


def gap_peak_mb(params: Mapping, settings: Mapping, stats: DatasetStats) -> float:
    """Expected peak resident memory of one ``gap_fit`` run (MB)."""
    from .gap import resolve_params

    p = resolve_params(dict(params))
    return GAP_BASE_MB + GAP_ARRAY_FACTOR * gap_arrays_mb(p, settings, stats)["peak"]


#: fitter name -> expected peak memory of its fit program (MB)
PEAK_MODELS = {"gap": gap_peak_mb}


def estimate_fit_mem_mb(fitter: str, params: Mapping, settings: Mapping, train_file: str | os.PathLike) -> int:
    """Memory to request for one fit (MB, attempt 1): the fit program's expected peak plus
    the script around it, divided by :data:`MEM_LIMIT_FRACTION`, times :data:`SAFETY`,
    rounded up to 100 MB. Fitters without a memory model get :data:`FALLBACK_MB`."""
    model = PEAK_MODELS.get(fitter)
    if model is None:
        return FALLBACK_MB
    peak = model(params, settings, dataset_stats(train_file))
    need = (peak + SCRIPT_MB) / MEM_LIMIT_FRACTION * SAFETY
    return int(math.ceil(need / 100.0) * 100)


def fit_mem_mb(res_cfg: Mapping, fitter: str, params: Mapping, settings: Mapping,
               train_file: str | os.PathLike, attempt: int = 1) -> int:
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


def job_mem_mb(res_cfg: Mapping, fitter: str, settings: Mapping, params_file: str | os.PathLike | None,
               train_file: str | os.PathLike | None, attempt: int = 1) -> int:
    """``mem_mb`` of a job from its resource section. With ``mem_mb: auto`` the
    hyperparameters come from ``params_file`` (a proposal ``t<k>.yaml`` or ``best.yaml``:
    ``fixed`` updated with ``point``); until that file and ``train_file`` exist (Snakemake
    evaluates resources again when the job is ready) the request is a placeholder."""
    from .io import read_yaml

    if res_cfg.get("mem_mb", "auto") != "auto":
        return int(res_cfg["mem_mb"]) * max(1, int(attempt))
    if not params_file or not train_file or not Path(params_file).exists() or not Path(train_file).exists():
        return FALLBACK_MB * max(1, int(attempt))
    doc = read_yaml(params_file)
    hp = {**(doc.get("fixed") or {}), **(doc.get("point") or {})}
    return fit_mem_mb(res_cfg, fitter, hp, settings, train_file, attempt)
