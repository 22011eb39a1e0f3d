"""One SNAP/qSNAP fit: the descriptors (from the cache, or computed here), the solve, the model."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...cluster.runner import RunResult
from ...errors import ConfigError
from .descriptors import check_cache, compute_descriptors, load_blocks, load_cv_blocks, load_valid_blocks
from .export import MODEL_PREFIX, write_model
from .params import PER_ELEMENT, descriptor_spec, resolve_params, settings_with_defaults
from .solve import solve


def fit(
    params: dict,
    settings: dict,
    train_file: str | os.PathLike,
    model_dir: str | os.PathLike,
    log_file: str | os.PathLike,
    species_z: Sequence[int],
    seed: int = 0,
    timeout_s: float | None = None,
    mem_limit_mb: float | None = None,
    threads: int = 1,
    descriptors: str | os.PathLike | None = None,
    valid_file: str | os.PathLike | None = None,
    inner: dict | None = None,
) -> RunResult:
    """Fit one SNAP/qSNAP model into ``model_dir`` (see :func:`write_model`).

    Parameters
    ----------
    descriptors
        A descriptor cache folder (written by :func:`compute_descriptors` in rule
        ``descriptors``). When it matches this trial's descriptor hyperparameters and
        training file, only the weighted least squares is solved; otherwise (or when
        ``None``) the descriptors are computed here first, in a subprocess.
    valid_file, inner
        The nested search (:mod:`.nested`): ``inner`` (the proposal's ``inner`` section:
        space, optimiser, loss) and the validation fold ``valid_file``. The weights and
        solver settings of ``inner["space"]`` are tuned on the cached blocks by the
        validation loss (every solve in ``model_dir/inner.csv``), and the model written is
        the one with the best inner weights; the result's ``extra["inner"]`` holds them.
        With ``inner["cv"]`` (``snap.inner.folds`` > 1) the inner loss is the k-fold CV loss
        on the training structures instead (the cache then holds their CV blocks too), and
        ``extra["inner"]["folds"]`` says k.

    Never raises for a failing fit: the outcome is in the returned status/reason.
    """
    from ase.data import chemical_symbols

    t0 = time.monotonic()
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    log = Path(log_file)
    log.parent.mkdir(parents=True, exist_ok=True)
    settings = settings_with_defaults(settings)
    symbols = [chemical_symbols[int(z)] for z in species_z]

    def failed(reason: str, wall: float | None = None, peak: float = 0.0, rc=None) -> RunResult:
        with open(log, "a") as fh:
            fh.write(f"FAILED: {reason}\n")
        for f in model_dir.glob(f"{MODEL_PREFIX}.*"):
            f.unlink()
        return RunResult(rc, "failed", reason, time.monotonic() - t0 if wall is None else wall, peak)

    log.write_text(f"# potune SNAP fit: {json.dumps(params, default=str)}\n")
    try:
        p = resolve_params(params)
        spec = descriptor_spec(params, settings)
    except (ValueError, TypeError, ConfigError) as exc:
        return failed(f"invalid hyperparameters: {exc}", 0.0)
    unknown_el = sorted(q for k in spec if k in PER_ELEMENT for q in spec[k] if q != "*" and q not in symbols)
    if unknown_el:
        return failed(f"invalid hyperparameters: element(s) {unknown_el} not in the training data ({symbols})", 0.0)

    cache_hit = False
    cache: Path | None = None
    desc_wall, desc_peak = 0.0, 0.0
    nested = inner is not None
    if nested and valid_file is None:
        return failed("nested search without a validation file", 0.0)
    vfile = valid_file if nested else None
    cv = inner.get("cv") if nested else None
    if descriptors is not None:
        why = check_cache(descriptors, spec, train_file, vfile, cv)
        if why:
            with open(log, "a") as fh:
                fh.write(f"descriptor cache {descriptors} not usable ({why}); computing the descriptors here\n")
        else:
            cache, cache_hit = Path(descriptors), True
    work = model_dir / "_work"
    if cache is None:
        meta = compute_descriptors(
            spec, train_file, work, work / "descriptors.log", timeout_s, mem_limit_mb, threads, valid_file=vfile, cv=cv
        )
        with open(log, "a") as fh:
            fh.write((work / "descriptors.log").read_text(errors="replace"))
        desc_wall, desc_peak = float(meta.get("wall_s") or 0.0), float(meta.get("peak_rss_mb") or 0.0)
        cache = work
    meta = json.loads((cache / "meta.json").read_text())
    if meta.get("status") != "ok":
        shutil.rmtree(work, ignore_errors=True)
        return failed(meta.get("reason", "descriptor computation failed"), peak=desc_peak, rc=1)
    if meta.get("symbols") != symbols:
        shutil.rmtree(work, ignore_errors=True)
        return failed(f"descriptor elements {meta.get('symbols')} differ from the training data's {symbols}")
    try:
        from threadpoolctl import threadpool_limits

        meta, blocks = load_blocks(cache)
        extra: dict = {}
        # BLAS threads beyond the job's share make LAPACK's SVD many times slower on a busy node
        with threadpool_limits(limits=max(1, int(threads))):
            if nested:
                cv_blocks = load_cv_blocks(cache) if cv else None
                extra["inner"] = _inner(
                    blocks, load_valid_blocks(cache), params, inner, seed, settings, model_dir, log, cv_blocks
                )
                del cv_blocks
                p = resolve_params({**params, **extra["inner"]["params"]})
            t2 = time.monotonic()
            coef, errors = solve(blocks, p, float(settings["svd_rcond"]))
        solve_s = time.monotonic() - t2
        write_model(
            model_dir,
            spec,
            symbols,
            coef,
            {
                "cache_hit": cache_hit,
                "descriptor_dir": str(descriptors) if cache_hit else None,
                "descriptor_s": float(meta.get("descriptor_s", 0.0)),
                "descriptor_wall_s": desc_wall,
                "solve_s": solve_s,
                "train_errors": errors,
                "hyperparameters": {k: p[k] for k in sorted(p)},
                "n_rows": int(sum(b["n_rows"] for b in blocks)),
                **extra,
            },
        )
    except (ValueError, np.linalg.LinAlgError, MemoryError, OSError, KeyError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        return failed(f"least-squares solve failed: {type(exc).__name__}: {exc}")
    shutil.rmtree(work, ignore_errors=True)
    with open(log, "a") as fh:
        fh.write(
            f"descriptors: {'cache hit ' + str(descriptors) if cache_hit else f'computed in {desc_wall:.2f} s'}\n"
            f"solve ({p['solver']}): {solve_s:.3f} s, rank {errors['rank']}/{errors['n_coefficients']}\n"
            f"training RMSE: E {1000 * (errors['energy_rmse'] or 0):.3f} meV/atom, "
            f"F {errors['force_rmse'] or 0:.4f} eV/A\n"
        )
    peak = max(desc_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    return RunResult(0, "ok", "", time.monotonic() - t0, peak, extra)


def _inner(
    blocks, vblocks, params: dict, inner: dict, seed: int, settings: dict, model_dir: Path, log: Path, cv_blocks=None
) -> dict:
    """Run the inner search (k-fold CV on ``cv_blocks`` when given), write
    ``model_dir/inner.csv``, log it; the best as a dict."""
    import pandas as pd

    from ...io import atomic_write_text
    from .nested import inner_search

    t0 = time.monotonic()
    best, rows = inner_search(blocks, vblocks, params, inner, seed, float(settings["svd_rcond"]), cv_blocks)
    wall = time.monotonic() - t0
    table = model_dir / "inner.csv"
    atomic_write_text(table, pd.DataFrame(rows).to_csv(index=False))
    solve_s = [r["solve_s"] for r in rows]
    with open(log, "a") as fh:
        fh.write(
            (
                f"inner search ({len(cv_blocks)}-fold CV on the training structures): {len(rows)} evaluations "
                f"of {len(cv_blocks)} solves"
                if cv_blocks
                else f"inner search: {len(rows)} solves"
            )
            + f" in {wall:.2f} s (solves {sum(solve_s):.2f} s, "
            f"median {1000 * float(np.median(solve_s)):.1f} ms); best inner trial {best['index']}: "
            f"loss {best['loss']:.6g} with {json.dumps(best['params'])}"
            + (f" (pinned, svd: {json.dumps(best['pinned'])})" if best["pinned"] else "")
            + "\n"
        )
    return {
        **best,
        "evaluations": len(rows),
        "wall_s": wall,
        "solve_s": float(sum(solve_s)),
        "table": str(table),
        **({"outer_loss": "cv"} if inner.get("outer_loss") == "cv" and cv_blocks else {}),  # the trial's loss
    }
