"""GAP fits with QUIP's ``gap_fit`` and predictions through ``quippy``.

Hyperparameters (the names used in ``space`` and ``fixed``) and their defaults are listed in
:data:`HYPERPARAMETERS`; settings that are not searched (descriptor kind, energy-only
training, e0 method, ...) come from the ``gap`` section of the configuration.

Also the length of a SOAP vector (:func:`soap_dimension`, the one formula potune uses) and
the memory model of a ``gap_fit`` run (:func:`peak_mem_mb`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..cluster.runner import RunResult, run_limited
from ..data.e0 import E0Choice, choose_e0, gap_fit_e0, records_of_file
from ..data.read import split_comment as _split_comment
from ..errors import ConfigError, DataError

if TYPE_CHECKING:
    from ..data.stats import DatasetStats

#: searchable/fixable GAP hyperparameters and their defaults. ``None`` means "derived":
#: soap_turbo's rcut_hard = cutoff, rcut_soft = cutoff - cutoff_transition_width,
#: atom_sigma_r = atom_sigma_t = atom_sigma.
HYPERPARAMETERS: dict[str, object] = {
    # SOAP descriptor (soap and soap_turbo)
    "cutoff": 5.0,
    "cutoff_transition_width": 1.0,
    "atom_sigma": 0.5,
    "n_max": 8,
    "l_max": 8,
    "zeta": 4,
    "delta": 1.0,
    "n_sparse": 1000,
    "sparse_method": "cur_points",
    "central_weight": 1.0,
    # soap_turbo only
    "rcut_hard": None,
    "rcut_soft": None,
    "atom_sigma_r": None,
    "atom_sigma_t": None,
    "atom_sigma_r_scaling": 0.0,
    "atom_sigma_t_scaling": 0.0,
    "amplitude_scaling": 0.0,
    "radial_enhancement": 0,
    "basis": "poly3gauss",
    "scaling_mode": "polynomial",
    # regularisation (gap_fit default_sigma)
    "sigma_energy": 0.001,
    "sigma_force": 0.1,
    "sigma_virial": 0.0,
    # optional two-body term (gap.two_body: true)
    "two_body_cutoff": 5.0,
    "two_body_delta": 1.0,
    "two_body_n_sparse": 20,
    "two_body_theta_uniform": 1.0,
    # e0: an explicit value (eV, every species) overrides gap.e0_method
    "e0": None,
}

SOAP_TURBO_ONLY = {
    "rcut_hard",
    "rcut_soft",
    "atom_sigma_r",
    "atom_sigma_t",
    "atom_sigma_r_scaling",
    "atom_sigma_t_scaling",
    "amplitude_scaling",
    "radial_enhancement",
    "basis",
    "scaling_mode",
}
SOAP_ONLY = {"cutoff_transition_width"}  # soap_turbo uses rcut_soft instead (derived from it by default)
#: hyperparameters gap_fit takes as integers (zeta is real)
INTEGER_HYPERPARAMETERS = frozenset({"n_max", "l_max", "n_sparse", "radial_enhancement", "two_body_n_sparse"})
#: a cutoff (Å) below this is refused before any job: no neighbour lies within it in real
#: data (the shortest bonds are ~0.74 Å, and potune refuses atoms closer than 0.1 Å), so
#: every fit would fail, with gap_fit reporting "out of memory"
MIN_CUTOFF = 1.0
CUTOFFS = ("cutoff", "rcut_hard", "two_body_cutoff")

TWO_BODY = {"two_body_cutoff", "two_body_delta", "two_body_n_sparse", "two_body_theta_uniform"}

SPARSE_METHODS = ("cur_points", "random", "uniform", "cur_covariance", "pivot", "kmeans", "covariance")


def _bundled_gap_fit() -> str | None:
    """The ``gap_fit`` binary inside the installed quippy-ase package (found without importing
    quippy), or None."""
    import importlib.util

    spec = importlib.util.find_spec("quippy")
    for d in (spec.submodule_search_locations or []) if spec else []:
        cand = Path(d) / "gap_fit"
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def _is_python_wrapper(exe: str) -> bool:
    """Whether ``exe`` is quippy-ase's console script (a Python wrapper around the binary)."""
    try:
        with open(exe, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"quippy.cli" in head


def find_gap_fit() -> str:
    """Path of the ``gap_fit`` executable (PATH first, then beside the running Python).

    quippy-ase's ``gap_fit`` console script is a Python wrapper that imports quippy (1-3 s)
    just to start the bundled binary; the binary is run directly instead.
    """
    exe = shutil.which("gap_fit")
    cand = Path(sys.executable).parent / "gap_fit"
    if exe is None and cand.exists():
        exe = str(cand)
    if exe is None or _is_python_wrapper(exe):
        exe = _bundled_gap_fit() or exe
    if exe:
        return exe
    raise FileNotFoundError("gap_fit not found: install quippy-ase (make venv) or put gap_fit on PATH")


def resolve_params(params: dict) -> dict:
    """Defaults, then ``params``; derived soap_turbo values filled in."""
    unknown = set(params) - set(HYPERPARAMETERS)
    if unknown:
        raise ConfigError(f"unknown GAP hyperparameter(s): {sorted(unknown)}")
    p = {**HYPERPARAMETERS, **params}
    if p["rcut_hard"] is None:
        p["rcut_hard"] = p["cutoff"]
    if p["rcut_soft"] is None:
        p["rcut_soft"] = p["rcut_hard"] - p["cutoff_transition_width"]
    if p["atom_sigma_r"] is None:
        p["atom_sigma_r"] = p["atom_sigma"]
    if p["atom_sigma_t"] is None:
        p["atom_sigma_t"] = p["atom_sigma"]
    return p


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _per_species(v, n: int, braces: int = 1) -> str:
    return "{" * braces + " ".join([_fmt(v)] * n) + "}" * braces


def descriptor_strings(
    p: dict, settings: dict, species_z: Sequence[int], for_gap_fit: bool = True, gp: bool = True
) -> list[str]:
    """The ``gap={...}`` descriptor entries for one set of resolved hyperparameters.

    soap_turbo's per-species arrays need double braces ``{{a b}}`` inside gap_fit's
    ``gap={...}`` (single braces fail to parse with two or more species); quippy's
    ``Descriptor`` takes single braces (``for_gap_fit=False``). ``gp=False`` leaves out the
    kernel/sparsification settings (n_sparse, delta, zeta, ...): the bare descriptor.
    """
    kind = settings.get("descriptor", "soap")
    common = (
        (
            f"n_sparse={int(p['n_sparse'])} sparse_method={p['sparse_method']} delta={_fmt(float(p['delta']))} "
            f"covariance_type=dot_product zeta={_fmt(p['zeta'])}"
        )
        if gp
        else ""
    )
    out = []
    if settings.get("two_body"):
        out.append(
            f"distance_2b cutoff={_fmt(float(p['two_body_cutoff']))} covariance_type=ard_se "
            f"delta={_fmt(float(p['two_body_delta']))} theta_uniform={_fmt(float(p['two_body_theta_uniform']))} "
            f"n_sparse={int(p['two_body_n_sparse'])} sparse_method=uniform add_species=T"
        )
    if kind == "soap":
        out.append(
            f"soap cutoff={_fmt(float(p['cutoff']))} cutoff_transition_width={_fmt(float(p['cutoff_transition_width']))} "
            f"atom_sigma={_fmt(float(p['atom_sigma']))} n_max={int(p['n_max'])} l_max={int(p['l_max'])} "
            f"central_weight={_fmt(float(p['central_weight']))} add_species=T {common}"
        )
    elif kind == "soap_turbo":
        n = len(species_z)
        b = 2 if for_gap_fit else 1
        zs = "{" * b + " ".join(str(z) for z in species_z) + "}" * b

        def ps(v):
            return _per_species(v, n, b)

        for i in range(1, n + 1):
            out.append(
                f"soap_turbo l_max={int(p['l_max'])} alpha_max={ps(int(p['n_max']))} "
                f"atom_sigma_r={ps(float(p['atom_sigma_r']))} "
                f"atom_sigma_t={ps(float(p['atom_sigma_t']))} "
                f"atom_sigma_r_scaling={ps(float(p['atom_sigma_r_scaling']))} "
                f"atom_sigma_t_scaling={ps(float(p['atom_sigma_t_scaling']))} "
                f"amplitude_scaling={ps(float(p['amplitude_scaling']))} "
                f"central_weight={ps(float(p['central_weight']))} "
                f"radial_enhancement={int(p['radial_enhancement'])} basis={p['basis']} scaling_mode={p['scaling_mode']} "
                f"rcut_hard={_fmt(float(p['rcut_hard']))} rcut_soft={_fmt(float(p['rcut_soft']))} "
                f"n_species={n} species_Z={zs} central_index={i} add_species=F {common}"
            )
    else:
        raise ConfigError(f"gap.descriptor: unknown descriptor {kind!r}; choose soap or soap_turbo")
    return out


def check_params(p: dict) -> None:
    """Reject values gap_fit would crash on, with a message naming the hyperparameter."""
    checks = [
        ("cutoff", p["cutoff"] > 0, "must be > 0"),
        ("atom_sigma", p["atom_sigma"] > 0, "must be > 0"),
        ("n_max", int(p["n_max"]) >= 1, "must be >= 1"),
        ("l_max", int(p["l_max"]) >= 0, "must be >= 0"),
        ("zeta", p["zeta"] > 0, "must be > 0"),
        ("delta", p["delta"] > 0, "must be > 0"),
        ("n_sparse", int(p["n_sparse"]) >= 1, "must be >= 1"),
        ("sigma_energy", p["sigma_energy"] > 0, "must be > 0"),
        ("sigma_force", p["sigma_force"] >= 0, "must be >= 0"),
        ("rcut_soft", p["rcut_soft"] <= p["rcut_hard"], "must be <= rcut_hard"),
    ]
    for name, ok, msg in checks:
        if not ok:
            raise ValueError(f"{name} = {p[name]} {msg}")


def build_command(
    params: dict,
    settings: dict,
    train_file: str | os.PathLike,
    model_file: str | os.PathLike,
    species_z: Sequence[int],
    seed: int = 0,
    gap_fit: str | None = None,
    e0: E0Choice | None = None,
) -> list[str]:
    """The ``gap_fit`` command line (a list of arguments; no shell involved).

    Parameters
    ----------
    params
        Hyperparameters (any subset of :data:`HYPERPARAMETERS`).
    settings
        The ``gap`` section of the configuration (descriptor, two_body, energy_only,
        e0_method, sparse_jitter).
    train_file
        Normalised extxyz (``REF_energy``/``REF_forces``).
    e0
        The e0 chosen for this training set (:func:`potune.data.e0.choose_e0`): a
        least-squares one is passed per species (``e0={In:-3.4:P:-5.2}``), ``average`` and
        ``isolated`` as gap_fit's own ``e0_method`` (the same values). Needed when
        ``e0_method`` is ``auto`` or ``least_squares``; a hyperparameter ``e0`` overrides it.
    """
    p = resolve_params(params)
    check_params(p)
    gap = " : ".join(descriptor_strings(p, settings, species_z))
    cmd = [
        gap_fit or find_gap_fit(),
        f"at_file={train_file}",
        f"gap={{{gap}}}",
        f"default_sigma={{{_fmt(float(p['sigma_energy']))} {_fmt(float(p['sigma_force']))} "
        f"{_fmt(float(p['sigma_virial']))} 0.0}}",
        "energy_parameter_name=REF_energy",
        "force_parameter_name=" + ("NONE" if settings.get("energy_only") else "REF_forces"),
        "virial_parameter_name=NONE",
        f"sparse_jitter={_fmt(float(settings.get('sparse_jitter', 1e-8)))}",
        f"gp_file={model_file}",
        f"rnd_seed={max(1, int(seed))}",  # gap_fit aborts on seed 0
        "do_copy_at_file=F",
    ]
    method = settings.get("e0_method", "auto")
    if p["e0"] is not None:
        cmd.append(f"e0={_fmt(float(p['e0']))}")
    elif e0 is not None and e0.method == "least_squares":
        cmd.append(gap_fit_e0(e0.values))
    elif e0 is not None:
        cmd.append(f"e0_method={e0.method}")
    elif method in ("average", "isolated"):
        cmd.append(f"e0_method={method}")
    else:
        raise ValueError(f"gap.e0_method {method}: build_command needs the training set's e0 (choose_e0)")
    return cmd


# --------------------------------------------------------------------------------------
# The training file as gap_fit reads it
#
# gap_fit reads extended XYZ with QUIP's own parser (libAtoms/xyz.c), which differs from
# ase's in ways that silently drop data (measured with QUIP v0.10.3, quippy-ase):
#
# * a comment line without "lattice" (ase writes none for a molecule: cell zero, pbc F)
#   is cut to its first key before a bogus zero Lattice is appended: every other key,
#   the energy included, is lost ("Number of target energies ... found" falls short; the
#   forces, in the atom lines, are still read);
# * the line is split on every " ' { and }, taken as alternately outside/inside quotes,
#   with empty pieces skipped and no escapes: a value holding one of them (it's, a"b,
#   a{b}, or an empty "") shifts that alternation and the keys after it are lost;
# * pbc is ignored: every structure is periodic in its Lattice, so a pbc F structure with
#   a small cell sees images of itself.
#
# gap_fit uses config_type only for config_type_sigma/config_type_n_sparseX/
# config_type_kernel_regularisation, none of which potune sets.

#: characters QUIP's comment-line parser splits on (no escape exists)
QUIP_QUOTES = frozenset("\"'{}")
_SAFE_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.+\-]*")
#: added to the extent + 2 x cutoff of a box given to a non-periodic structure (Å)
BOX_MARGIN = 1.0
#: gap_fit's report of the targets it read, e.g.
#: "Number of target energies (property name: REF_energy) found: 12"
COUNT_LINE = re.compile(r"Number of target (.+?) \(property name: (.*?)\) found: *(-?\d+)")


def gap_config_type(name: str) -> str:
    """``name`` as a config_type token gap_fit reads whole: unchanged when it is a plain
    word (letters, digits, ``_ . + -``, starting with a letter, not T/F/inf/nan), else
    ``ct_<name with other characters as _>_<6 hex digits of its hash>`` (distinct names
    stay distinct)."""
    if _SAFE_TOKEN.fullmatch(name) and name not in ("T", "F"):
        try:
            float(name)  # inf, nan, infinity: QUIP would read a number
        except ValueError:
            return name
    safe = re.sub(r"[^A-Za-z0-9_.+\-]+", "_", name).strip("_")[:48]
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return f"ct_{safe}_{digest}" if safe else f"ct_{digest}"


def _property_columns(props: str) -> dict[str, tuple[int, int]]:
    """Column (start, count) of each per-atom property of a ``Properties=`` value."""
    f = props.split(":")
    cols, col = {}, 0
    for name, _kind, count in zip(f[0::3], f[1::3], f[2::3]):
        cols[name] = (col, int(count))
        col += int(count)
    return cols


def gap_cell(cell, periodic, positions, cutoff: float):
    """A Lattice for gap_fit (which treats every direction as periodic): periodic vectors
    kept; each non-periodic one replaced by a direction orthogonal to the others, as long
    as the structure's extent along it + 2 x ``cutoff`` + :data:`BOX_MARGIN`, so that no
    atom sees an image of another (right-handed)."""
    import numpy as np

    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    keep = [bool(p) for p in periodic]
    new = cell.copy()
    n_per = sum(keep)
    if n_per == 3:
        return new
    if n_per == 0:
        dirs = {i: np.eye(3)[i] for i in range(3)}
    elif n_per == 2:
        i = keep.index(False)
        n = np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])
        dirs = {i: n / np.linalg.norm(n)}
    else:
        i = keep.index(True)
        a = cell[i] / np.linalg.norm(cell[i])
        trial = np.eye(3)[int(np.argmin(np.abs(a)))]
        u = trial - trial.dot(a) * a
        u /= np.linalg.norm(u)
        dirs = {(i + 1) % 3: u, (i + 2) % 3: np.cross(a, u)}
    for j, d in dirs.items():
        proj = pos @ d
        length = float(proj.max() - proj.min()) + 2.0 * float(cutoff) + BOX_MARGIN
        new[j] = d * length
    return new


def write_gap_input(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    cutoff: float,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
) -> dict[str, int]:
    """Write ``src`` (extxyz) as gap_fit reads it whole, and count what gap_fit must read.

    Every frame gets a ``Lattice`` first (a box ``extent + 2 x cutoff + margin`` along its
    non-periodic directions, see :func:`gap_cell`; pbc kept), config_type values become
    plain tokens (:func:`gap_config_type`), and other values QUIP cannot read
    (holding ``" ' { }`` or empty; gap_fit does not use them) are left out. Atom lines
    are copied as they are. Reads the text only (no ase: a fit job stays light).

    Returns
    -------
    {"frames": n, "energies": frames with ``energy_key``, "forces": 3 x atoms of frames
    with ``forces_key``} (force components, as gap_fit counts them).

    Raises
    ------
    DataError
        A frame that is not extended XYZ as potune writes it (named by frame).
    """
    import numpy as np

    from ..data.read import _open_text

    counts = {"frames": 0, "energies": 0, "forces": 0}
    tmp = Path(dst).with_name(f".{Path(dst).name}.tmp")
    with _open_text(src) as fin, open(tmp, "w") as fout:
        frame = 0
        while True:
            head = fin.readline()
            if not head.strip():
                break
            where = f"{src}: frame {frame} (0-based)"
            try:
                n = int(head.split()[0])
            except ValueError:
                raise DataError(f"{where}: expected an atom count, got {head.strip()[:60]!r}") from None
            comment = fin.readline()
            atom_lines = [fin.readline() for _ in range(n)]
            if not comment or (n and not atom_lines[-1]):
                raise DataError(f"{where}: the file ends inside the frame (truncated?)")
            pairs = _split_comment(comment)
            lower = {k.lower(): v for k, v in pairs}
            props = lower.get("properties") or "species:S:1:pos:R:3"
            cols = _property_columns(props)
            try:
                lat = lower.get("lattice")
                cell = np.array([float(x) for x in lat.split()]).reshape(3, 3) if lat else np.zeros((3, 3))
                pbc_s = lower.get("pbc")
                pbc = [t == "T" for t in pbc_s.split()] if pbc_s else [lat is not None] * 3
                periodic = [p and np.linalg.norm(v) > 0 for p, v in zip(pbc, cell)]
                if not all(periodic):
                    c0, _ = cols["pos"]
                    pos = [[float(x) for x in ln.split()[c0 : c0 + 3]] for ln in atom_lines]
                    cell = gap_cell(cell, periodic, pos, cutoff)
            except (ValueError, KeyError, IndexError, AttributeError) as exc:
                raise DataError(f"{where}: cannot read its Lattice/pbc/positions: {exc}") from None
            out = ['Lattice="' + " ".join(repr(float(x)) for x in cell.reshape(-1)) + '"', f"Properties={props}"]
            for key, value in pairs:
                if key.lower() in ("lattice", "properties", "pbc"):
                    continue
                if any(c in QUIP_QUOTES or c.isspace() or c == "=" for c in key) or not key:
                    continue
                if key == "config_type":
                    value = gap_config_type(value or "")
                elif value is None:
                    value = "T"  # a bare key means True (ase); QUIP aborts on it
                if not value or any(c in QUIP_QUOTES for c in value):
                    continue
                out.append(f'{key}="{value}"' if any(c.isspace() for c in value) else f"{key}={value}")
            out.append('pbc="' + " ".join("T" if p else "F" for p in pbc) + '"')
            fout.write(f"{n}\n" + " ".join(out) + "\n")
            fout.writelines(ln if ln.endswith("\n") else ln + "\n" for ln in atom_lines)
            counts["frames"] += 1
            if energy_key in dict(pairs):
                counts["energies"] += 1
            if forces_key in cols:
                counts["forces"] += 3 * n
            frame += 1
    os.replace(tmp, dst)
    return counts


def gap_fit_counts(log_text: str) -> dict[str, int]:
    """gap_fit's counts of the targets it read, from its output: ``{"energies": 12,
    "local_properties": 0, "forces": 69, "virials": 0, "hessian_eigenvalues": 0}`` (the
    names of its "Number of target ... found" lines; empty when there are none)."""
    out = {}
    for m in COUNT_LINE.finditer(log_text):
        out[m.group(1).strip().lower().replace(" ", "_")] = int(m.group(3))
    return out


def count_mismatch(expected: dict, found: dict, energy_only: bool = False) -> str | None:
    """Why gap_fit's counts (:func:`gap_fit_counts`) show that it did not read the whole
    training file (``expected`` from :func:`write_gap_input`), or None when they agree."""
    if "energies" not in found or "forces" not in found:
        return (
            "gap_fit's log has no 'Number of target energies/forces ... found' line: cannot check "
            "that it read the whole training file"
        )
    want_f = 0 if energy_only else expected["forces"]
    if found["energies"] == expected["energies"] and found["forces"] == want_f:
        return None
    return (
        f"gap_fit read {found['energies']} of the {expected['energies']} energies and {found['forces']} of the "
        f"{want_f} force components in the training file ({expected['frames']} structures): it would "
        "train on less data than given (QUIP's extxyz parser dropped part of it)"
    )


def train_e0(params: dict, settings: dict, train_file, species_z: Sequence[int]) -> E0Choice | None:
    """The e0 of a fit on ``train_file`` (:func:`potune.data.e0.choose_e0`), or None where
    gap_fit decides alone (a hyperparameter ``e0``, or ``e0_method`` ``average``/``isolated``)."""
    method = settings.get("e0_method", "auto")
    if params.get("e0") is not None or method in ("average", "isolated"):
        return None
    return choose_e0(records_of_file(train_file), method, species_z)


def describe_e0(e0: E0Choice) -> str:
    """One line for the fit log: the method used, the values and why, if it fell back."""
    from ase.data import chemical_symbols

    vals = ", ".join(f"{chemical_symbols[z]} {v:.6f}" for z, v in sorted(e0.values.items()))
    cond = f"; composition condition number {e0.cond:.3g}" if e0.cond is not None else ""
    return f"e0 {e0.method}: {vals} eV{cond}" + (f" ({e0.note})" if e0.note else "")


def max_cutoff(p: dict, settings: dict) -> float:
    """The largest cutoff of the descriptors of resolved hyperparameters ``p``."""
    kind = settings.get("descriptor", "soap")
    cuts = [float(p["rcut_hard"] if kind == "soap_turbo" else p["cutoff"])]
    if settings.get("two_body"):
        cuts.append(float(p["two_body_cutoff"]))
    return max(cuts)


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
) -> RunResult:
    """Fit one GAP; the model is ``model_dir/gap.xml`` (plus its sparseX files).

    The training file is written into the model's working folder first, as gap_fit reads it
    whole (:func:`write_gap_input`): gap_fit writes an index file beside its input, and fits
    running side by side must not share one. A fit whose log shows that gap_fit read fewer
    energies or forces than the file holds (:func:`gap_fit_counts`) is failed.
    Never raises for a failing fit: the outcome is in the returned status/reason.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    work = model_dir / "_work"
    shutil.rmtree(work, ignore_errors=True)  # a stale train.xyz.idx would be read as this file's index
    work.mkdir()
    train_copy = work / "train.xyz"
    model_file = model_dir / "gap.xml"
    try:
        e0 = train_e0(params, settings, train_file, species_z)
    except (ValueError, KeyError, IndexError, OSError, UnicodeDecodeError) as exc:
        Path(log_file).write_text(f"training file not usable for e0: {exc}\n")
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(None, "failed", f"e0 ({settings.get('e0_method', 'auto')}): {exc}", 0.0, 0.0)
    try:
        cmd = build_command(params, settings, train_copy.resolve(), model_file.resolve(), species_z, seed, e0=e0)
    except OSError as exc:  # no gap_fit: a failure that says so, not a job crash (retried as if killed)
        Path(log_file).write_text(f"cannot start gap_fit: {exc}\n")
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(None, "failed", f"cannot start gap_fit: {exc}", 0.0, 0.0)
    except (ValueError, ConfigError) as exc:
        Path(log_file).write_text(f"invalid hyperparameters: {exc}\n")
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(None, "failed", f"invalid hyperparameters: {exc}", 0.0, 0.0)
    try:
        cutoff = max_cutoff(resolve_params(params), settings)
    except (ValueError, ConfigError) as exc:
        Path(log_file).write_text(f"invalid hyperparameters: {exc}\n")
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(None, "failed", f"invalid hyperparameters: {exc}", 0.0, 0.0)
    try:
        expected = write_gap_input(train_file, train_copy, cutoff)
    except (DataError, OSError, UnicodeDecodeError) as exc:
        Path(log_file).write_text(f"training file not usable: {exc}\n")
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(None, "failed", f"training file not usable: {exc}", 0.0, 0.0)
    if expected["energies"] == 0:
        reason = f"training file {train_file}: no structure has an energy REF_energy"
        Path(log_file).write_text(reason + "\n")
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(None, "failed", reason, 0.0, 0.0)
    # unbuffered stdout: otherwise a SYSTEM ABORT message is lost when gap_fit stops
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GFORTRAN_UNBUFFERED_PRECONNECTED": "y"}
    res = run_limited(cmd, log_file, timeout_s=timeout_s, mem_limit_mb=mem_limit_mb, cwd=work, env=env)
    shutil.rmtree(work, ignore_errors=True)
    if e0 is not None:
        with open(log_file, "a") as fh:
            fh.write(f"# potune: {describe_e0(e0)}\n")
    if res.status == "ok" and not model_file.exists():
        res = RunResult(res.returncode, "failed", "gap_fit exited 0 but wrote no gap.xml", res.wall_s, res.peak_rss_mb)
    if res.status == "ok":
        try:
            found = gap_fit_counts(Path(log_file).read_text(errors="replace"))
        except OSError:
            found = {}
        why = count_mismatch(expected, found, bool(settings.get("energy_only")))
        if why:
            with open(log_file, "a") as fh:
                fh.write(f"# potune: fit refused: {why}\n")
            res = RunResult(res.returncode, "failed", why, res.wall_s, res.peak_rss_mb)
    if res.status != "ok":
        for f in model_dir.glob("gap.xml*"):
            f.unlink()
    return res


def calculator(model_dir: str | os.PathLike):
    """An ASE calculator for a fitted GAP (``quippy.potential.Potential``)."""
    from quippy.potential import Potential

    xml = Path(model_dir) / "gap.xml"
    if not xml.exists():
        raise FileNotFoundError(f"{xml}: no GAP model")
    return Potential(param_filename=str(xml))


def check_config(cfg: dict, space) -> None:
    """Hyperparameters that only make sense with another descriptor or the two-body term."""
    settings = cfg.get("gap", {})
    names = set(space.names) | set(cfg.get("fixed") or {})
    if "sigma_virial" in names:
        raise ConfigError(
            "sigma_virial: potune fits GAPs without virials (gap_fit runs with virial_parameter_name=NONE), "
            "so sigma_virial would change nothing; remove it from space/fixed"
        )
    kind = settings.get("descriptor", "soap")
    if kind == "soap":
        wrong = sorted(names & SOAP_TURBO_ONLY)
        if wrong:
            raise ConfigError(f"{wrong[0]}: only used by gap.descriptor soap_turbo (descriptor is soap)")
    else:
        wrong = sorted(names & SOAP_ONLY)
        if wrong:
            raise ConfigError(f"{wrong[0]}: not used by soap_turbo; search rcut_soft instead")
    if not settings.get("two_body"):
        wrong = sorted(names & TWO_BODY)
        if wrong:
            raise ConfigError(f"{wrong[0]}: set gap.two_body: true to use the two-body term")
    fixed = cfg.get("fixed") or {}
    for name in CUTOFFS:
        if name in space.names:
            p = space.params[space.names.index(name)]
            if p.type == "categorical":
                lows = [(f"space.{name}.values", v) for v in p.values if _is_real(v)]
            else:
                lows = [(f"space.{name}.low", p.low)]
        elif _is_real(fixed.get(name)):
            lows = [(f"fixed.{name}", fixed[name])]
        else:
            continue
        for key, value in lows:
            if value < MIN_CUTOFF:
                raise ConfigError(
                    f"{key}: {value} Å is below the smallest cutoff potune accepts ({MIN_CUTOFF} Å): no "
                    "neighbour lies that close in real data, so every fit would fail (gap_fit then "
                    "reports running out of memory)"
                )
    sm = space.params[space.names.index("sparse_method")] if "sparse_method" in space.names else None
    values = list(sm.values) if sm else [(cfg.get("fixed") or {}).get("sparse_method", "cur_points")]
    for v in values:
        if v not in SPARSE_METHODS:
            raise ConfigError(f"sparse_method: {v!r} is not one of {', '.join(SPARSE_METHODS)}")


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_programs(cfg: dict) -> None:
    """``gap_fit`` can be started (else every fit would fail, and a job that cannot start its
    program looks to a scheduler like one killed for memory)."""
    try:
        exe = find_gap_fit()
    except FileNotFoundError as exc:
        raise ConfigError(f"fitter gap: {exc}") from None
    if not os.access(exe, os.X_OK):
        raise ConfigError(f"fitter gap: {exe} is not executable (chmod +x, or put a working gap_fit on PATH)")


def soap_dimension(n_max: int, l_max: int, n_species: int, descriptor: str = "soap") -> int:
    """Length of one SOAP vector as gap_fit and quippy build it.

    ``(l_max + 1) * N * (N + 1) / 2`` with ``N = n_species * n_max``: QUIP's soap with
    ``add_species`` (one descriptor per central species over all neighbour species) adds one
    constant element; soap_turbo (PPSO eq. 4, ``alpha_max`` summed over species) does not.
    """
    n = int(n_max) * int(n_species)
    dim = (int(l_max) + 1) * n * (n + 1) // 2
    return dim + 1 if descriptor == "soap" else dim


def descriptor_length(params: dict, settings: dict, species_z: Sequence[int]) -> int | None:
    """Length of one SOAP vector for these hyperparameters (:func:`soap_dimension`)."""
    p = resolve_params(params)
    return soap_dimension(p["n_max"], p["l_max"], len(species_z), settings.get("descriptor", "soap"))


# ----------------------------------------------------------------------------- memory model
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


def arrays_mb(params: Mapping, settings: Mapping, stats: DatasetStats) -> dict[str, float]:
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
    d = soap_dimension(params["n_max"], params["l_max"], S, kind)
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
    return {
        "descriptors": desc / mb,
        "covariances": cov / mb,
        "sparse_selection": cur / mb,
        "peak": max(desc + max(yY, cur), cov) / mb,
    }


def peak_mem_mb(params: Mapping, settings: Mapping, stats: DatasetStats) -> float:
    """Expected peak resident memory of one ``gap_fit`` run (MB)."""
    p = resolve_params(dict(params))
    return GAP_BASE_MB + GAP_ARRAY_FACTOR * arrays_mb(p, settings, stats)["peak"]
