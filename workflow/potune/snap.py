"""SNAP and qSNAP fits: FitSNAP (LAMMPS ``compute snap``) computes the bispectrum
descriptors, potune solves the weighted linear least squares, LAMMPS ``pair_style snap``
predicts.

Hyperparameters (names for ``space`` and ``fixed``; defaults in :data:`HYPERPARAMETERS`)
------------------------------------------------------------------------------------------
Descriptor hyperparameters (they determine the bispectrum matrix):

- ``rcutfac``, ``twojmax``, ``rfac0``, ``rmin0`` — as in LAMMPS ``compute snap``;
- ``radelem`` and ``wj`` — element radius and weight of every element;
  ``radelem[<El>]`` / ``wj[<El>]`` (e.g. ``radelem[Ga]``) override them for one element;
- ``quadratic`` — false: linear SNAP, true: qSNAP (``quadraticflag 1``).

Fit hyperparameters (they only change the weighted least squares):

- ``eweight`` / ``fweight`` — weight of every energy row (energy per atom, eV/atom) and
  force-component row (eV/Å), as XPOT's/FitSNAP's group weights;
  ``eweight[<config_type>]`` / ``fweight[<config_type>]`` override them for one
  config_type (e.g. ``eweight[AIMD-NVT]``); structures without a config_type are in
  group ``default``;
- ``solver`` — ``svd`` (minimum-norm least squares, FitSNAP's SVD solver) or ``ridge``;
- ``ridge_alpha`` — the ridge regularisation (``solver: ridge``).

Descriptor cache
----------------
The descriptor matrix of a training set is compressed, per (config_type, energy/force)
block, to the R factor of the QR decomposition of ``[A_block | b_block]``. For any
block weights ``w_g`` the weighted problem ``min sum_g w_g^2 |A_g x - b_g|^2`` equals
``min |stack(w_g R_g[:, :n]) x - stack(w_g R_g[:, n])|^2`` up to a constant, with the same
singular values, so a trial whose descriptor hyperparameters were seen before only solves a
small ``(blocks * n) x n`` problem. The cache (``blocks.npz`` + ``meta.json``) is written
by :func:`compute_descriptors`, which runs FitSNAP and LAMMPS in a subprocess
(:mod:`potune.snap_descriptors`): a LAMMPS error or abort becomes a failed trial.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ConfigError
from .runner import RunResult, run_limited

#: searchable/fixable SNAP hyperparameters and their defaults (FitSNAP's defaults for the
#: descriptor; XPOT-like group weights). Per-element (``radelem[<El>]``, ``wj[<El>]``) and
#: per-config_type (``eweight[<ct>]``, ``fweight[<ct>]``) overrides are accepted too.
HYPERPARAMETERS: dict[str, object] = {
    "rcutfac": 4.67637,
    "twojmax": 6,
    "rfac0": 0.99363,
    "rmin0": 0.0,
    "radelem": 0.5,
    "wj": 1.0,
    "quadratic": False,
    "eweight": 100.0,
    "fweight": 1.0,
    "solver": "svd",
    "ridge_alpha": 1.0e-6,
}
PER_ELEMENT = ("radelem", "wj")
PER_CONFIG_TYPE = ("eweight", "fweight")
DESCRIPTOR_HPS = ("rcutfac", "twojmax", "rfac0", "rmin0", "radelem", "wj", "quadratic")
SOLVERS = ("svd", "ridge")
#: ``snap`` settings that change the descriptors (part of the cache key)
DESCRIPTOR_SETTINGS = ("bzeroflag", "switchflag")
SETTINGS_DEFAULTS = {"bzeroflag": True, "switchflag": True, "descriptor_cache": True, "svd_rcond": 1.0e-13}
MODEL_PREFIX = "snap"
_QUALIFIED = re.compile(r"^([A-Za-z_]\w*)\[([^\[\]]+)\]$")


# ----------------------------------------------------------------------------- names and checks
def split_name(name: str) -> tuple[str, str | None]:
    """``"eweight[AIMD-NVT]"`` -> ``("eweight", "AIMD-NVT")``; ``"rcutfac"`` -> ``("rcutfac", None)``."""
    m = _QUALIFIED.match(name)
    return (m.group(1), m.group(2)) if m else (name, None)


def accepts_hyperparameter(name: str) -> bool:
    """Whether ``name`` is a SNAP hyperparameter (plain or per-element/per-config_type)."""
    base, qual = split_name(name)
    if qual is None:
        return name in HYPERPARAMETERS
    if base in PER_ELEMENT:
        from ase.data import chemical_symbols

        return qual in chemical_symbols[1:]
    return base in PER_CONFIG_TYPE


def resolve_params(params: dict) -> dict:
    """Defaults, then ``params`` (qualified names kept as given)."""
    unknown = sorted(n for n in params if not accepts_hyperparameter(n))
    if unknown:
        raise ConfigError(f"unknown SNAP hyperparameter(s): {unknown}")
    p = {**HYPERPARAMETERS, **params}
    p["twojmax"] = _as_int(p["twojmax"], "twojmax")
    p["quadratic"] = _as_bool(p["quadratic"], "quadratic")
    return p


def _as_int(v, name: str) -> int:
    if isinstance(v, bool) or float(v) != int(float(v)):
        raise ValueError(f"{name} = {v!r} must be an integer")
    return int(float(v))


def _as_bool(v, name: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
        return v.lower() in ("true", "1")
    raise ValueError(f"{name} = {v!r} must be true or false")


def _bound_checks(name: str) -> list[tuple[str, callable]]:
    """(message, predicate) pairs a value of hyperparameter ``name`` must satisfy."""
    base, _ = split_name(name)
    return {
        "rcutfac": [("must be > 0", lambda v: v > 0)],
        "rfac0": [("must be > 0", lambda v: v > 0)],
        "rmin0": [("must be >= 0", lambda v: v >= 0)],
        "radelem": [("must be > 0", lambda v: v > 0)],
        "wj": [("must be > 0", lambda v: v > 0)],
        "twojmax": [("must be >= 0", lambda v: v >= 0), ("must be <= 20 (LAMMPS memory grows as twojmax^5)", lambda v: v <= 20)],
        "eweight": [("must be >= 0", lambda v: v >= 0)],
        "fweight": [("must be >= 0", lambda v: v >= 0)],
        "ridge_alpha": [("must be >= 0", lambda v: v >= 0)],
    }.get(base, [])


def check_params(p: dict) -> None:
    """Reject values LAMMPS would crash on or silently misuse, naming the hyperparameter."""
    for name, value in p.items():
        for msg, ok in _bound_checks(name):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} = {value!r} must be a finite number")
            if not ok(value):
                raise ValueError(f"{name} = {value} {msg}")
    if p["solver"] not in SOLVERS:
        raise ValueError(f"solver = {p['solver']!r} must be one of {', '.join(SOLVERS)}")
    if p["solver"] == "ridge" and p["ridge_alpha"] <= 0:
        raise ValueError("ridge_alpha must be > 0 with solver ridge")
    if p["rmin0"] >= p["rcutfac"] * 2 * max(_per_key(p, "radelem").values()):
        raise ValueError(f"rmin0 = {p['rmin0']} must be smaller than the cutoff")


def _per_key(p: dict, base: str) -> dict:
    """``{"*": global value, qualifier: override, ...}`` of a per-element/per-config_type name."""
    out = {"*": float(p[base])}
    for name, v in p.items():
        b, q = split_name(name)
        if b == base and q is not None:
            out[q] = float(v)
    return out


def settings_with_defaults(settings: dict | None) -> dict:
    return {**SETTINGS_DEFAULTS, **(settings or {})}


def descriptor_spec(params: dict, settings: dict | None) -> dict:
    """Everything that determines the descriptor matrix, canonicalised (JSON-able).

    Raises ``ValueError``/:class:`ConfigError` for invalid hyperparameters.
    """
    p = resolve_params(params)
    check_params(p)
    s = settings_with_defaults(settings)
    return {
        "rcutfac": float(p["rcutfac"]),
        "twojmax": int(p["twojmax"]),
        "rfac0": float(p["rfac0"]),
        "rmin0": float(p["rmin0"]),
        "radelem": _per_key(p, "radelem"),
        "wj": _per_key(p, "wj"),
        "quadratic": bool(p["quadratic"]),
        "bzeroflag": bool(s["bzeroflag"]),
        "switchflag": bool(s["switchflag"]),
    }


def spec_key(spec: dict, data_key: str = "") -> str:
    """The cache key: a hash of the descriptor specification and the data key."""
    blob = json.dumps({"spec": spec, "data": data_key}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_key(cfg: dict) -> str:
    """A hash of what determines every fold's training data: the data files' contents, the
    data keys and the split settings (the fold number is in the cache path)."""
    h = hashlib.sha256()
    d = cfg["data"]
    for k in ("train", "validation"):
        if d.get(k):
            h.update(f"{k}:{file_sha256(d[k])}".encode())
    h.update(json.dumps({"keys": [d.get("energy_key"), d.get("forces_key"), d.get("config_type_key")],
                         "split": cfg["split"]}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def element_values(spec: dict, base: str, symbols: Sequence[str]) -> list[float]:
    """Per-element ``radelem``/``wj`` for ``symbols`` (overrides, else the global value)."""
    d = spec[base]
    return [float(d.get(s, d["*"])) for s in symbols]


def group_weight(params: dict, base: str, config_type: str) -> float:
    """``eweight``/``fweight`` of one config_type (its override, else the global value)."""
    return float(params.get(f"{base}[{config_type}]", params[base]))


# ----------------------------------------------------------------------------- descriptors
def compute_descriptors(
    spec: dict,
    train_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    log_file: str | os.PathLike,
    timeout_s: float | None = None,
    mem_limit_mb: float | None = None,
    threads: int = 1,
) -> dict:
    """Compute and compress the descriptor matrix of ``train_file`` into ``out_dir``.

    Runs :mod:`potune.snap_descriptors` (FitSNAP + LAMMPS) in a subprocess with the time
    and memory limits. Always leaves ``out_dir/meta.json``; returns its content, whose
    ``status`` is ``ok`` or ``failed`` (with ``reason``, e.g. LAMMPS's error message).
    Never raises for a failing computation.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta_file = out / "meta.json"
    if meta_file.exists():
        meta_file.unlink()
    spec_file = out / "spec.json"
    spec_file.write_text(json.dumps(spec, indent=1, sort_keys=True))
    cmd = [sys.executable, "-m", "potune.snap_descriptors", str(spec_file), str(Path(train_file).resolve()), str(out.resolve())]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    res = run_limited(cmd, log_file, timeout_s=timeout_s, mem_limit_mb=mem_limit_mb, cwd=out, env=env)
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if res.status != "ok" or meta is None or meta.get("status") != "ok":
        reason = (meta or {}).get("reason") or res.reason or "descriptor computation wrote no result"
        meta = {"status": "failed", "reason": f"descriptors: {reason}", "spec": spec,
                "wall_s": res.wall_s, "peak_rss_mb": res.peak_rss_mb}
        (out / "blocks.npz").unlink(missing_ok=True)
        meta_file.write_text(json.dumps(meta, indent=1))
    else:
        meta["peak_rss_mb"] = res.peak_rss_mb
        meta["wall_s"] = res.wall_s
        meta_file.write_text(json.dumps(meta, indent=1))
    return meta


def check_cache(cache_dir: str | os.PathLike, spec: dict, train_file: str | os.PathLike) -> str:
    """Empty string if ``cache_dir`` holds the descriptors of ``spec`` on ``train_file``,
    else why not."""
    meta_file = Path(cache_dir) / "meta.json"
    if not meta_file.exists():
        return f"{meta_file} missing"
    meta = json.loads(meta_file.read_text())
    if meta.get("spec") != spec:
        return "descriptor hyperparameters differ"
    if meta.get("status") == "ok" and meta.get("train_sha256") != file_sha256(train_file):
        return "training data differ"
    return ""


def load_blocks(cache_dir: str | os.PathLike) -> tuple[dict, list[dict]]:
    """``(meta, blocks)``; each block has ``config_type``, ``kind`` (energy/force),
    ``n_rows`` and ``R`` (its ``[A|b]`` R factor)."""
    cache = Path(cache_dir)
    meta = json.loads((cache / "meta.json").read_text())
    with np.load(cache / "blocks.npz") as z:
        blocks = [{**b, "R": z[f"R{i}"]} for i, b in enumerate(meta["blocks"])]
    return meta, blocks


# ----------------------------------------------------------------------------- solve
def solve(blocks: Sequence[dict], params: dict, rcond: float = 1.0e-13) -> tuple[np.ndarray, dict]:
    """Weighted linear least squares on the compressed blocks.

    Returns the coefficients (``n_types * (1 + ncoeff)``, the layout of ``.snapcoeff``)
    and training errors: RMSE of energy per atom (eV/atom) and force components (eV/Å),
    overall and per config_type.
    """
    import scipy.linalg

    p = resolve_params(params)
    rows, rhs = [], []
    n = blocks[0]["R"].shape[1] - 1
    for b in blocks:
        w = group_weight(p, "eweight" if b["kind"] == "energy" else "fweight", b["config_type"])
        if w > 0:
            rows.append(w * b["R"][:, :n])
            rhs.append(w * b["R"][:, n])
    if not rows:
        raise ValueError("every energy and force weight is 0: nothing to fit")
    M, y = np.vstack(rows), np.concatenate(rhs)
    if p["solver"] == "ridge":
        M = np.vstack([M, math.sqrt(float(p["ridge_alpha"])) * np.eye(n)])
        y = np.concatenate([y, np.zeros(n)])
        coef, _, rank, sv = scipy.linalg.lstsq(M, y, lapack_driver="gelsd", check_finite=True)
    else:
        coef, _, rank, sv = scipy.linalg.lstsq(M, y, cond=rcond, lapack_driver="gelsd", check_finite=True)
    if not np.all(np.isfinite(coef)):
        raise ValueError("the least-squares solution is not finite")
    sq: dict = {}
    for b in blocks:
        r = b["R"][:, :n] @ coef - b["R"][:, n]
        key = (b["config_type"], b["kind"])
        s, c = sq.get(key, (0.0, 0))
        sq[key] = (s + float(r @ r), c + int(b["n_rows"]))
    errors: dict = {"per_config_type": {}}
    for kind, label in (("energy", "energy_rmse"), ("force", "force_rmse")):
        tot = sum(v[0] for k, v in sq.items() if k[1] == kind)
        cnt = sum(v[1] for k, v in sq.items() if k[1] == kind)
        errors[label] = math.sqrt(tot / cnt) if cnt else None
        for (ct, k), (s, c) in sq.items():
            if k == kind:
                errors["per_config_type"].setdefault(ct, {})[label] = math.sqrt(s / c) if c else None
    errors["rank"] = int(rank)
    errors["n_coefficients"] = int(n)
    return coef, errors


def n_bispectrum(twojmax: int) -> int:
    """Number of linear bispectrum components for band limit ``twojmax`` (30 for 6)."""
    n = 0
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            n += sum(1 for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2) if j >= j1)
    return n


def descriptor_length(params: dict, settings: dict, species_z: Sequence[int]) -> int | None:
    """Length of one atom's descriptor (linear, plus quadratic terms for qSNAP)."""
    p = resolve_params(params)
    n = n_bispectrum(int(p["twojmax"]))
    return n + n * (n + 1) // 2 if p["quadratic"] else n


# ----------------------------------------------------------------------------- export
def _fmt(v: float) -> str:
    return repr(float(v))


def snapparam_text(spec: dict) -> str:
    """The ``.snapparam`` file of a model with descriptor specification ``spec``."""
    return "\n".join([
        "# SNAP parameters written by potune",
        f"rcutfac {_fmt(spec['rcutfac'])}",
        f"twojmax {int(spec['twojmax'])}",
        f"rfac0 {_fmt(spec['rfac0'])}",
        f"rmin0 {_fmt(spec['rmin0'])}",
        f"bzeroflag {int(spec['bzeroflag'])}",
        f"switchflag {int(spec['switchflag'])}",
        f"quadraticflag {int(spec['quadratic'])}",
        "",
    ])


def snapcoeff_text(spec: dict, symbols: Sequence[str], coef: np.ndarray) -> str:
    """The ``.snapcoeff`` file: per element its radius, weight and ``1 + ncoeff`` coefficients."""
    per = coef.reshape(len(symbols), -1)
    rad = element_values(spec, "radelem", symbols)
    wj = element_values(spec, "wj", symbols)
    lines = ["# SNAP coefficients written by potune", "", f"{len(symbols)} {per.shape[1]}"]
    for s, r, w, c in zip(symbols, rad, wj, per):
        lines.append(f"{s} {_fmt(r)} {_fmt(w)}")
        lines += [f"{v:.17g}" for v in c]
    return "\n".join(lines) + "\n"


def lammps_commands(model_dir: str | os.PathLike, symbols: Sequence[str], relative: bool = False) -> list[str]:
    """``pair_style``/``pair_coeff`` lines for the model in ``model_dir``."""
    d = Path(model_dir)
    base = "" if relative else f"{d.resolve()}/"
    return ["pair_style snap",
            f"pair_coeff * * {base}{MODEL_PREFIX}.snapcoeff {base}{MODEL_PREFIX}.snapparam {' '.join(symbols)}"]


def write_model(model_dir: str | os.PathLike, spec: dict, symbols: Sequence[str], coef: np.ndarray, info: dict) -> None:
    """``snap.snapcoeff``, ``snap.snapparam``, ``snap.mod`` (LAMMPS include) and ``model.json``."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{MODEL_PREFIX}.snapcoeff").write_text(snapcoeff_text(spec, symbols, coef))
    (d / f"{MODEL_PREFIX}.snapparam").write_text(snapparam_text(spec))
    mod = ["# LAMMPS include file for this SNAP potential (units metal, atom types in this order: "
           + " ".join(symbols) + ")", "# usage: include snap.mod  (run from this folder or edit the paths)"]
    (d / f"{MODEL_PREFIX}.mod").write_text("\n".join(mod + lammps_commands(d, symbols, relative=True)) + "\n")
    doc = {"fitter": "snap", "symbols": list(symbols), "spec": spec, "coefficients": [float(c) for c in coef], **info}
    (d / "model.json").write_text(json.dumps(doc, indent=1))


def read_model(model_dir: str | os.PathLike) -> dict:
    f = Path(model_dir) / "model.json"
    if not f.exists():
        raise FileNotFoundError(f"{f}: no SNAP model")
    return json.loads(f.read_text())


# ----------------------------------------------------------------------------- fit
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
) -> RunResult:
    """Fit one SNAP/qSNAP model into ``model_dir`` (see :func:`write_model`).

    Parameters
    ----------
    descriptors
        A descriptor cache folder (written by :func:`compute_descriptors` in rule
        ``descriptors``). When it matches this trial's descriptor hyperparameters and
        training file, only the weighted least squares is solved; otherwise (or when
        ``None``) the descriptors are computed here first, in a subprocess.

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
    if descriptors is not None:
        why = check_cache(descriptors, spec, train_file)
        if why:
            with open(log, "a") as fh:
                fh.write(f"descriptor cache {descriptors} not usable ({why}); computing the descriptors here\n")
        else:
            cache, cache_hit = Path(descriptors), True
    work = model_dir / "_work"
    if cache is None:
        meta = compute_descriptors(spec, train_file, work, work / "descriptors.log", timeout_s, mem_limit_mb, threads)
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

        t1 = time.monotonic()
        meta, blocks = load_blocks(cache)
        # BLAS threads beyond the job's share make LAPACK's SVD many times slower on a busy node
        with threadpool_limits(limits=max(1, int(threads))):
            coef, errors = solve(blocks, p, float(settings["svd_rcond"]))
        solve_s = time.monotonic() - t1
        write_model(model_dir, spec, symbols, coef, {
            "cache_hit": cache_hit, "descriptor_dir": str(descriptors) if cache_hit else None,
            "descriptor_s": float(meta.get("descriptor_s", 0.0)), "descriptor_wall_s": desc_wall,
            "solve_s": solve_s, "train_errors": errors, "hyperparameters": {k: p[k] for k in sorted(p)},
            "n_rows": int(sum(b["n_rows"] for b in blocks)),
        })
    except (ValueError, np.linalg.LinAlgError, MemoryError, OSError, KeyError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        return failed(f"least-squares solve failed: {type(exc).__name__}: {exc}")
    shutil.rmtree(work, ignore_errors=True)
    with open(log, "a") as fh:
        fh.write(f"descriptors: {'cache hit ' + str(descriptors) if cache_hit else f'computed in {desc_wall:.2f} s'}\n"
                 f"solve ({p['solver']}): {solve_s:.3f} s, rank {errors['rank']}/{errors['n_coefficients']}\n"
                 f"training RMSE: E {1000 * (errors['energy_rmse'] or 0):.3f} meV/atom, "
                 f"F {errors['force_rmse'] or 0:.4f} eV/A\n")
    peak = max(desc_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    return RunResult(0, "ok", "", time.monotonic() - t0, peak)


# ----------------------------------------------------------------------------- predict
def calculator(model_dir: str | os.PathLike):
    """An ASE calculator of a fitted SNAP model: LAMMPS ``pair_style snap`` with the
    exported ``.snapcoeff``/``.snapparam`` (through ``ase.calculators.lammpslib``)."""
    from ase.calculators.lammpslib import LAMMPSlib

    model = read_model(model_dir)
    symbols = model["symbols"]
    for ext in ("snapcoeff", "snapparam"):
        f = Path(model_dir) / f"{MODEL_PREFIX}.{ext}"
        if not f.exists():
            raise FileNotFoundError(f"{f}: missing")
    return LAMMPSlib(
        lmpcmds=lammps_commands(model_dir, symbols),
        atom_types={s: i + 1 for i, s in enumerate(symbols)},
        keep_alive=True,
        log_file=None,
    )


def linear_predict(model_dir: str | os.PathLike, frames: Sequence) -> tuple[list[float], list[np.ndarray]]:
    """Energies and forces of ``frames`` from the linear model itself: FitSNAP descriptors
    times the fitted coefficients (the path the fit uses; for cross-checks with LAMMPS)."""
    from .snap_descriptors import descriptor_rows

    model = read_model(model_dir)
    coef = np.array(model["coefficients"])
    energies, forces = [], []
    for atoms in frames:
        rows = descriptor_rows(model["spec"], model["symbols"], [atoms], require_reference=False)
        pred = rows["A"] @ coef
        n = len(atoms)
        energies.append(float(pred[0]) * n)
        forces.append(pred[1:1 + 3 * n].reshape(n, 3) @ rows["rotations"][0].T)
    return energies, forces


# ----------------------------------------------------------------------------- config
def _config_types(cfg: dict) -> tuple[set[str], set[str]] | None:
    """config_types and elements of the training data (None if it cannot be read here)."""
    from . import data as D

    d = cfg.get("data", {})
    path = d.get("train")
    if not path or not Path(path).is_file():
        return None
    try:
        frames = D.read_structures(path, energy_key=d.get("energy_key", "energy"), forces_key=d.get("forces_key", "forces"),
                                   config_type_key=d.get("config_type_key", "config_type"), require_forces=False)
    except Exception:  # the data check reports unreadable data with a better message
        return None
    return {a.info.get(D.CT, "default") for a in frames}, {s for a in frames for s in a.get_chemical_symbols()}


def check_config(cfg: dict, space) -> None:
    """Bounds of fixed values and search ranges, solver names, and per-config_type /
    per-element names that the training data does not have."""
    fixed = cfg.get("fixed") or {}
    items = [(f"fixed.{k}", k, v) for k, v in fixed.items()]
    for prm in space.params:
        if prm.type == "categorical":
            items += [(f"space.{prm.name}.values", prm.name, v) for v in prm.values]
        else:
            items += [(f"space.{prm.name}.low", prm.name, prm.low), (f"space.{prm.name}.high", prm.name, prm.high)]
    for key, name, v in items:
        base, _ = split_name(name)
        try:
            if base == "solver" and v not in SOLVERS:
                raise ValueError(f"{v!r} is not one of {', '.join(SOLVERS)}")
            if base == "quadratic":
                _as_bool(v, name)
            if base == "twojmax":
                _as_int(v, name)
            for msg, ok in _bound_checks(name):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{v!r} must be a number")
                if not ok(v):
                    raise ValueError(f"{v} {msg}")
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    names = set(space.names) | set(fixed)
    if "ridge_alpha" in names and "solver" not in names:
        raise ConfigError("ridge_alpha: only used with solver ridge; fix or search 'solver' too (e.g. fixed.solver: ridge)")
    if "solver" in fixed and fixed["solver"] != "ridge" and "ridge_alpha" in names:
        raise ConfigError("ridge_alpha: only used with solver ridge (fixed.solver is svd)")
    qualified = [(n, *split_name(n)) for n in sorted(names) if split_name(n)[1] is not None]
    if not qualified:
        return
    found = _config_types(cfg)
    if found is None:
        return
    cts, elements = found
    for name, base, q in qualified:
        if base in PER_CONFIG_TYPE and q not in cts:
            raise ConfigError(f"{name}: no structure of config_type {q!r} in data.train (config_types: {', '.join(sorted(cts))})")
        if base in PER_ELEMENT and q not in elements:
            raise ConfigError(f"{name}: no element {q!r} in data.train (elements: {', '.join(sorted(elements))})")
