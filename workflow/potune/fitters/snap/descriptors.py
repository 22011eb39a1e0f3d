"""The SNAP descriptor cache: descriptor matrices with FitSNAP's library (LAMMPS ``compute snap``),
compressed per block.


Run as a subprocess by :func:`compute_descriptors`, so that a LAMMPS error or
abort ends only this process::

    python -m potune.fitters.snap.descriptors [--cv=CV.json] SPEC.json TRAIN.xyz OUT_DIR [VALID.xyz]

writes ``OUT_DIR/blocks.npz`` (one compressed ``[A|b]`` block per config_type and row
kind) and, last, ``OUT_DIR/meta.json`` (``status`` ok/failed, ``reason``, the spec, the
training file's sha256, block descriptions, timings). With ``VALID.xyz`` (the nested
search, :mod:`.nested`) also ``OUT_DIR/valid_blocks.npz``: the validation structures'
blocks per config_type, compressed the same way, with kinds ``energy`` (rows of energy
per atom), ``energy_sqrtn`` (the same rows times sqrt(N), whose residuals are dE/sqrt(N))
and ``force``. The R factor of ``[A | b]`` keeps the part of ``b`` outside the range of
``A`` in its last row, so ``|A x - b|^2 == |R[:, :n] x - R[:, n]|^2`` exactly: the
validation RMSEs of any coefficients follow from these small blocks. With ``CV.json`` (the
cross-validated inner search, ``snap.inner.folds`` > 1: :func:`.nested.cv_spec`) also
``OUT_DIR/cv_blocks.npz`` (:func:`compress_cv`): per training fold f, the R factors of the
training rows outside fold f per (config_type, kind) and fold f's validation blocks.

Conventions (FitSNAP's): an energy row is the sum of the atoms' descriptors divided by the
number of atoms, its target the energy per atom; force rows are the descriptor gradients,
targets the force components. Each element's block of columns starts with a constant
column (its atom fraction in energy rows, 0 in force rows) — the ``beta0`` of
``.snapcoeff`` — followed by its ``ncoeff`` bispectrum (and, for qSNAP, quadratic)
columns. Positions *and forces* are rotated into the LAMMPS frame of each cell.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...cluster.runner import run_limited
from ...io import atomic_output, atomic_write_text, file_sha256
from .params import element_values


def compute_descriptors(
    spec: dict,
    train_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    log_file: str | os.PathLike,
    timeout_s: float | None = None,
    mem_limit_mb: float | None = None,
    threads: int = 1,
    valid_file: str | os.PathLike | None = None,
    cv: dict | None = None,
) -> dict:
    """Compute and compress the descriptor matrix of ``train_file`` into ``out_dir``
    (and of ``valid_file``, when given, into ``out_dir/valid_blocks.npz``; with ``cv``, the
    cross-validation blocks of ``snap.inner.folds`` into ``out_dir/cv_blocks.npz``).

    Runs :func:`main` of this module (FitSNAP + LAMMPS) in a subprocess with the time
    and memory limits. Always leaves ``out_dir/meta.json``; returns its content, whose
    ``status`` is ``ok`` or ``failed`` (with ``reason``, e.g. LAMMPS's error message).
    Never raises for a failing computation; raises :class:`~potune.errors.ConfigError` when
    the training structures cannot be dealt into ``cv["folds"]`` folds (before computing).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta_file = out / "meta.json"
    if meta_file.exists():
        meta_file.unlink()
    spec_file = out / "spec.json"
    atomic_write_text(spec_file, json.dumps(spec, indent=1, sort_keys=True))
    cv_args = []
    if cv:
        from ...data.read import read_normalised

        cv_folds(read_normalised(train_file), cv)  # a ConfigError here, not a failed trial
        cv_file = out / "cv.json"
        atomic_write_text(cv_file, json.dumps(cv, indent=1, sort_keys=True))
        cv_args = [f"--cv={cv_file.resolve()}"]
    cmd = [
        sys.executable,
        "-m",
        "potune.fitters.snap.descriptors",
        *cv_args,
        str(spec_file.resolve()),  # the program runs in out_dir: every path absolute
        str(Path(train_file).resolve()),
        str(out.resolve()),
    ]
    if valid_file is not None:
        cmd.append(str(Path(valid_file).resolve()))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    res = run_limited(cmd, log_file, timeout_s=timeout_s, mem_limit_mb=mem_limit_mb, cwd=out, env=env)
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if (
        meta is None
        and res.returncode is not None
        and res.returncode > 0
        and not res.reason.startswith("out of memory")
    ):
        # the program exited by itself before its own error handling (which always writes
        # meta.json for a FitSNAP/LAMMPS failure): potune's bug, not a trial's outcome
        raise RuntimeError(f"the descriptor program failed before computing anything ({res.reason}); see {log_file}")
    if res.status != "ok" or meta is None or meta.get("status") != "ok":
        reason = (meta or {}).get("reason") or res.reason or "descriptor computation wrote no result"
        meta = {
            "status": "failed",
            "reason": f"descriptors: {reason}",
            "spec": spec,
            "wall_s": res.wall_s,
            "peak_rss_mb": res.peak_rss_mb,
        }
        (out / "blocks.npz").unlink(missing_ok=True)
        (out / "valid_blocks.npz").unlink(missing_ok=True)
        (out / "cv_blocks.npz").unlink(missing_ok=True)
        atomic_write_text(meta_file, json.dumps(meta, indent=1))
    else:
        meta["peak_rss_mb"] = res.peak_rss_mb
        meta["wall_s"] = res.wall_s
        atomic_write_text(meta_file, json.dumps(meta, indent=1))
    return meta


def check_cache(
    cache_dir: str | os.PathLike,
    spec: dict,
    train_file: str | os.PathLike,
    valid_file: str | os.PathLike | None = None,
    cv: dict | None = None,
) -> str:
    """Empty string if ``cache_dir`` holds the descriptors of ``spec`` on ``train_file``
    (and on ``valid_file``, when given; and the cross-validation blocks of ``cv``, when
    given), else why not."""
    meta_file = Path(cache_dir) / "meta.json"
    if not meta_file.exists():
        return f"{meta_file} missing"
    meta = json.loads(meta_file.read_text())
    if meta.get("spec") != spec:
        return "descriptor hyperparameters differ"
    if meta.get("status") == "ok" and meta.get("train_sha256") != file_sha256(train_file):
        return "training data differ"
    if valid_file is not None and meta.get("status") == "ok" and meta.get("valid_sha256") != file_sha256(valid_file):
        return "no validation blocks of this validation data"
    if cv and meta.get("status") == "ok" and meta.get("cv") != cv:
        return f"no cross-validation blocks of snap.inner.folds {cv['folds']} (fold seed {cv['seed']})"
    return ""


def load_blocks(cache_dir: str | os.PathLike) -> tuple[dict, list[dict]]:
    """``(meta, blocks)``; each block has ``config_type``, ``kind`` (energy/force),
    ``n_rows`` and ``R`` (its ``[A|b]`` R factor)."""
    cache = Path(cache_dir)
    meta = json.loads((cache / "meta.json").read_text())
    with np.load(cache / "blocks.npz") as z:
        blocks = [{**b, "R": z[f"R{i}"]} for i, b in enumerate(meta["blocks"])]
    return meta, blocks


def load_valid_blocks(cache_dir: str | os.PathLike) -> list[dict]:
    """The validation blocks (``config_type``, ``kind`` energy/energy_sqrtn/force,
    ``n_rows``, ``R``) written with a validation file."""
    cache = Path(cache_dir)
    meta = json.loads((cache / "meta.json").read_text())
    if not meta.get("valid_blocks"):
        raise FileNotFoundError(f"{cache}: no validation blocks")
    with np.load(cache / "valid_blocks.npz") as z:
        return [{**b, "R": z[f"V{i}"]} for i, b in enumerate(meta["valid_blocks"])]


def load_cv_blocks(cache_dir: str | os.PathLike) -> list[dict]:
    """The cross-validation blocks (``snap.inner.folds`` > 1), one dict per fold: ``blocks``
    (the training rows outside the fold, as :func:`load_blocks`'s) and ``vblocks`` (the
    fold's, as :func:`load_valid_blocks`'s)."""
    cache = Path(cache_dir)
    meta = json.loads((cache / "meta.json").read_text())
    if not meta.get("cv_blocks"):
        raise FileNotFoundError(f"{cache}: no cross-validation blocks")
    folds = [{"blocks": [], "vblocks": []} for _ in range(int(meta["cv"]["folds"]))]
    with np.load(cache / "cv_blocks.npz") as z:
        for i, b in enumerate(meta["cv_blocks"]["blocks"]):
            folds[b["fold"]]["blocks"].append({**b, "R": z[f"C{i}"]})
        for i, b in enumerate(meta["cv_blocks"]["vblocks"]):
            folds[b["fold"]]["vblocks"].append({**b, "R": z[f"V{i}"]})
    return folds


def cv_folds(frames: Sequence, cv: dict) -> list[tuple[list[int], list[int]]]:
    """The (training, held-out) structure indices of each fold of ``cv`` (:func:`.nested.cv_spec`):
    :func:`potune.data.split.kfold_split`. :class:`~potune.errors.ConfigError` naming
    ``snap.inner.folds`` when there are fewer structures to hold out than folds."""
    from ...data.split import kfold_split
    from ...errors import ConfigError, DataError

    try:
        return kfold_split(frames, int(cv["folds"]), int(cv["seed"]), cv["always_train"])
    except DataError as exc:
        raise ConfigError(f"snap.inner.folds: {exc} in the training fold") from None


# ----------------------------------------------------------------------------- the subprocess's side
def lammps_frame(atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(positions, lattice, R)``: positions and the FitSNAP ``Lattice`` in LAMMPS's
    (upper-triangular) frame, and the orthogonal map ``x_lammps = x @ R``."""
    from fitsnap3lib.scrapers.ase_funcs import get_apre

    cell = np.array(atoms.cell, dtype=float)
    if abs(np.linalg.det(cell)) < 1e-8:
        raise ValueError(
            f"SNAP fits need a periodic cell with nonzero volume on every structure (cell {cell.tolist()})"
        )
    apre = get_apre(cell)
    R = np.linalg.solve(cell, apre)
    return atoms.get_positions() @ R, apre.T, R


def fitsnap_settings(spec: dict, symbols: Sequence[str], workdir: str | Path) -> dict:
    """FitSNAP input (library mode) for ``spec`` and elements ``symbols``."""

    rcut = 2.0 * spec["rcutfac"] * max(element_values(spec, "radelem", symbols))
    return {
        "BISPECTRUM": {
            "numTypes": len(symbols),
            "twojmax": " ".join([str(int(spec["twojmax"]))] * len(symbols)),
            "rcutfac": repr(float(spec["rcutfac"])),
            "rfac0": repr(float(spec["rfac0"])),
            "rmin0": repr(float(spec["rmin0"])),
            "wj": " ".join(repr(v) for v in element_values(spec, "wj", symbols)),
            "radelem": " ".join(repr(v) for v in element_values(spec, "radelem", symbols)),
            "type": " ".join(symbols),
            "wselfallflag": 0,
            "chemflag": int(bool(spec.get("chemflag", False))),
            "bzeroflag": int(spec["bzeroflag"]),
            "quadraticflag": int(spec["quadratic"]),
            "switchflag": int(spec["switchflag"]),
        },
        "CALCULATOR": {"calculator": "LAMMPSSNAP", "energy": 1, "force": 1, "stress": 0},
        "SOLVER": {"solver": "SVD"},
        "REFERENCE": {
            "units": "metal",
            "atom_style": "atomic",
            "pair_style": f"zero {rcut + 1.0!r}",
            "pair_coeff": "* *",
        },
        "OUTFILE": {
            "output_style": "SNAP",
            "metrics": str(Path(workdir) / "fitsnap_metrics.md"),
            "potential": str(Path(workdir) / "fitsnap_pot"),
        },
    }


def descriptor_rows(
    spec: dict, symbols: Sequence[str], frames: Sequence, workdir: str | Path = ".", require_reference: bool = True
) -> dict:
    """The descriptor matrix of ``frames``: one energy row then ``3 N`` force rows per frame.

    Returns
    -------
    dict
        ``A`` (rows x n_types*(1+ncoeff)), ``b`` (targets; zeros where
        ``require_reference`` is false), ``kind`` (0 energy, 1 force), ``frame`` (index of
        the row's frame), ``rotations`` (per frame, ``x_lammps = x @ R``), ``ncoeff``.
    """
    from fitsnap3lib.fitsnap import FitSnap

    from ...data.read import CT, REF_E, REF_F

    fs = FitSnap(fitsnap_settings(spec, symbols, workdir), arglist=["--overwrite"])
    ncoeff = fs.config.sections["BISPECTRUM"].ncoeff
    data, rotations = [], []
    for i, atoms in enumerate(frames):
        pos, lattice, R = lammps_frame(atoms)
        n = len(atoms)
        if require_reference:
            if REF_F not in atoms.arrays:
                raise ValueError(f"structure {i} has no reference forces")
            energy, forces = float(atoms.info[REF_E]), np.asarray(atoms.arrays[REF_F], dtype=float) @ R
        else:
            energy, forces = 0.0, np.zeros((n, 3))
        rotations.append(R)
        data.append(
            {
                "Group": str(atoms.info.get(CT, "default")),
                "File": f"structure {i}",
                "Positions": pos,
                "Energy": energy,
                "Forces": forces,
                "Stress": np.zeros((3, 3)),
                "AtomTypes": atoms.get_chemical_symbols(),
                "NumAtoms": n,
                "QMLattice": lattice,
                "Lattice": lattice,
                "Rotation": np.eye(3),
                "Translation": np.zeros((n, 3)),
                "test_bool": 0,
                "eweight": 1.0,
                "fweight": 1.0,
                "vweight": 1.0,
            }
        )
    fs.process_configs(data)
    A = np.array(fs.pt.shared_arrays["a"].array, dtype=float)
    b = np.array(fs.pt.shared_arrays["b"].array, dtype=float)
    row_type = list(fs.pt.fitsnap_dict["Row_Type"])
    del fs
    n_types = len(symbols)
    kind = np.array([0 if t == "Energy" else 1 for t in row_type], dtype=np.int8)
    counts = [len(a) for a in frames]
    frame = np.repeat(np.arange(len(frames)), [1 + 3 * c for c in counts])
    if len(kind) != len(frame) or A.shape[0] != len(frame):
        raise RuntimeError(f"FitSNAP returned {A.shape[0]} rows, expected {len(frame)}")
    if spec["bzeroflag"]:
        # FitSNAP leaves out the constant column with bzeroflag; put beta0's column back.
        blocks = []
        for t, sym in enumerate(symbols):
            const = np.zeros((A.shape[0], 1))
            for i, atoms in enumerate(frames):
                if counts[i]:
                    const[np.flatnonzero((frame == i) & (kind == 0)), 0] = (
                        atoms.get_chemical_symbols().count(sym) / counts[i]
                    )
            blocks += [const, A[:, t * ncoeff : (t + 1) * ncoeff]]
        A = np.hstack(blocks)
    if A.shape[1] != n_types * (1 + ncoeff):
        raise RuntimeError(f"descriptor matrix has {A.shape[1]} columns, expected {n_types * (1 + ncoeff)}")
    if not np.all(np.isfinite(A)):
        raise ValueError("non-finite descriptors (NaN/inf) from LAMMPS")
    return {"A": A, "b": b, "kind": kind, "frame": frame, "rotations": rotations, "ncoeff": int(ncoeff)}


def compress(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The R factor of ``[A | b]`` (at most ``n + 1`` rows): ``|A x - b|`` is preserved."""
    import scipy.linalg

    M = np.hstack([A, b[:, None]])
    R = scipy.linalg.qr(M, mode="r", overwrite_a=True, check_finite=False)[0]
    return np.ascontiguousarray(R[: min(M.shape)])  # scipy's mode "r" pads R with zero rows to M's shape


def compute(
    spec: dict,
    train_file: str | Path,
    out_dir: str | Path,
    valid_file: str | Path | None = None,
    cv: dict | None = None,
) -> dict:
    """Descriptors of ``train_file`` compressed per (config_type, kind) into ``out_dir``
    (and of ``valid_file`` into ``valid_blocks.npz``; with ``cv``, :func:`compress_cv`'s
    blocks into ``cv_blocks.npz``)."""
    from ase.data import chemical_symbols

    from ...data.read import CT, read_normalised, species

    out = Path(out_dir)
    t0 = time.monotonic()
    frames = read_normalised(train_file)
    symbols = [chemical_symbols[z] for z in species(frames)]
    rows = descriptor_rows(spec, symbols, frames, out)
    t_desc = time.monotonic() - t0
    cts = np.array([str(frames[i].info.get(CT, "default")) for i in rows["frame"]])
    blocks, arrays = [], {}
    t1 = time.monotonic()
    for ct in sorted(set(cts)):
        for k, name in ((0, "energy"), (1, "force")):
            sel = (cts == ct) & (rows["kind"] == k)
            if not sel.any():
                continue
            arrays[f"R{len(blocks)}"] = compress(rows["A"][sel], rows["b"][sel])
            blocks.append(
                {
                    "config_type": ct,
                    "kind": name,
                    "n_rows": int(sel.sum()),
                    "n_structures": int(len(set(rows["frame"][sel].tolist()))),
                }
            )
    t_qr = time.monotonic() - t1
    with atomic_output(out / "blocks.npz", suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    valid = {}
    if valid_file is not None:
        t2 = time.monotonic()
        vframes = read_normalised(valid_file)
        vrows = descriptor_rows(spec, symbols, vframes, out)
        vblocks, varrays = compress_validation(vrows, vframes)
        with atomic_output(out / "valid_blocks.npz", suffix=".npz") as tmp:
            np.savez(tmp, **varrays)
        valid = {
            "valid_file": str(valid_file),
            "valid_sha256": file_sha256(valid_file),
            "valid_blocks": vblocks,
            "valid_descriptor_s": time.monotonic() - t2,
        }
    cv_meta = {}
    if cv:
        t3 = time.monotonic()
        cv_desc, cv_arrays = compress_cv(rows, frames, cv)
        with atomic_output(out / "cv_blocks.npz", suffix=".npz") as tmp:
            np.savez(tmp, **cv_arrays)
        cv_meta = {"cv": cv, "cv_blocks": cv_desc, "cv_compress_s": time.monotonic() - t3}
    return {
        "status": "ok",
        "reason": "",
        "spec": spec,
        "symbols": symbols,
        "train_file": str(train_file),
        "train_sha256": file_sha256(train_file),
        "n_structures": len(frames),
        "n_atoms": int(sum(len(a) for a in frames)),
        "n_rows": int(rows["A"].shape[0]),
        "n_columns": int(rows["A"].shape[1]),
        "ncoeff": rows["ncoeff"],
        "blocks": blocks,
        "descriptor_s": t_desc,
        "compress_s": t_qr,
        **valid,
        **cv_meta,
    }


def compress_cv(rows: dict, frames: Sequence, cv: dict) -> tuple[dict, dict]:
    """The cross-validation blocks of :func:`cv_folds`'s folds of the training ``frames``
    (``rows``: their :func:`descriptor_rows`).

    For each fold f: its validation blocks (:func:`compress_validation` of fold f's rows,
    arrays ``V<i>``), and per (config_type, energy/force) group the R factor of the
    training rows outside fold f (arrays ``C<i>``). The latter is the R factor of the stacked
    R factors of the other folds' (and the never held-out structures') rows of the group, so
    the descriptor rows are factorised once: about one extra :func:`compress` of the
    training set, plus k small QRs of at most ``k (n + 1)`` rows per group.

    Returns
    -------
    (descriptions, arrays)
        descriptions ``{"blocks": [...], "vblocks": [...]}``, each entry with ``fold``,
        ``config_type``, ``kind``, ``n_rows`` (the ``C<i>``/``V<i>`` in list order).
    """
    from ...data.read import CT

    folds = cv_folds(frames, cv)
    fold_of = np.full(len(frames), -1)
    for f, (_, held) in enumerate(folds):
        fold_of[held] = f
    row_fold = fold_of[rows["frame"]]
    cts = np.array([str(frames[i].info.get(CT, "default")) for i in rows["frame"]])
    parts: dict = {}  # (config_type, kind) -> {fold or -1 (never held out): (R, n_rows)}
    vdesc, arrays = [], {}
    for f in range(len(folds)):
        sel = row_fold == f
        sub = {k: rows[k][sel] for k in ("A", "b", "kind", "frame")}
        vb, va = compress_validation(sub, frames)
        for j, b in enumerate(vb):
            arrays[f"V{len(vdesc)}"] = va[f"V{j}"]
            vdesc.append({**b, "fold": f})
            if b["kind"] in ("energy", "force"):  # unscaled rows: the training blocks' rows
                parts.setdefault((b["config_type"], b["kind"]), {})[f] = (va[f"V{j}"], b["n_rows"])
    for ct in sorted(set(cts[row_fold < 0])):
        for k, name in ((0, "energy"), (1, "force")):
            sel = (row_fold < 0) & (cts == ct) & (rows["kind"] == k)
            if sel.any():
                parts.setdefault((ct, name), {})[-1] = (compress(rows["A"][sel], rows["b"][sel]), int(sel.sum()))
    cdesc = []
    for f in range(len(folds)):
        for (ct, name), by_fold in sorted(parts.items()):
            rest = [v for g, v in sorted(by_fold.items()) if g != f]
            if not rest:
                continue
            M = np.vstack([R for R, _ in rest])
            arrays[f"C{len(cdesc)}"] = rest[0][0] if len(rest) == 1 else compress(M[:, :-1], M[:, -1])
            cdesc.append({"fold": f, "config_type": ct, "kind": name, "n_rows": int(sum(n for _, n in rest))})
    return {"blocks": cdesc, "vblocks": vdesc}, arrays


def compress_validation(rows: dict, frames: Sequence) -> tuple[list[dict], dict]:
    """Validation blocks per config_type: ``energy`` (per-atom rows, residual dE/N),
    ``energy_sqrtn`` (rows times sqrt(N), residual dE/sqrt(N): the weighted loss's energy
    term) and ``force`` (one row per component). Returns (descriptions, arrays ``V<i>``)."""
    from ...data.read import CT

    cts = np.array([str(frames[i].info.get(CT, "default")) for i in rows["frame"]])
    n_atoms = np.array([len(frames[i]) for i in rows["frame"]], dtype=float)
    blocks, arrays = [], {}
    for ct in sorted(set(cts)):
        for k, name, scale in ((0, "energy", None), (0, "energy_sqrtn", np.sqrt), (1, "force", None)):
            sel = (cts == ct) & (rows["kind"] == k)
            if not sel.any():
                continue
            A, b = rows["A"][sel], rows["b"][sel]
            if scale is not None:
                s = scale(n_atoms[sel])
                A, b = A * s[:, None], b * s
            arrays[f"V{len(blocks)}"] = compress(A, b)
            blocks.append({"config_type": ct, "kind": name, "n_rows": int(sel.sum())})
    return blocks, arrays


def main(argv: Sequence[str]) -> int:
    cv_file = next((a.split("=", 1)[1] for a in argv if a.startswith("--cv=")), None)
    argv = [a for a in argv if not a.startswith("--cv=")]
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    spec_file, train_file, out_dir = argv[:3]
    valid_file = argv[3] if len(argv) == 4 else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = json.loads(Path(spec_file).read_text())
    cv = json.loads(Path(cv_file).read_text()) if cv_file else None
    try:
        meta = compute(spec, train_file, out, valid_file, cv)
        rc = 0
    except Exception as exc:  # LAMMPS raises plain Exception with its ERROR line
        traceback.print_exc()
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        msg = (lines[0] if lines else repr(exc))[:600]
        meta = {"status": "failed", "reason": f"{type(exc).__name__}: {msg}", "spec": spec}
        rc = 1
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=1))
    print(f"[potune] descriptors: {meta['status']} {meta.get('reason', '')}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
