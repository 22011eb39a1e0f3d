"""Reading and normalising reference data (extended XYZ).

Every structure potune passes between rules is normalised: reference energy in
``atoms.info["REF_energy"]`` (eV, total), reference forces in ``atoms.arrays["REF_forces"]``
(eV/Å), ``atoms.info["config_type"]`` (a string, ``"default"`` where the source has none)
and no calculator attached. Files are checked once, up front (:mod:`potune.data.check`), so
that bad data stops a run before any job starts, with a message naming the file, the frame
and the key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_output

REF_E = "REF_energy"


REF_F = "REF_forces"


CT = "config_type"


#: config_types that always stay in the training set (never validated on)
ALWAYS_TRAIN = ("isolated_atom",)


def _get_energy(atoms, key: str):
    if key in atoms.info:
        return atoms.info[key]
    calc = atoms.calc
    if calc is not None and key in ("energy", "free_energy") and key in getattr(calc, "results", {}):
        return calc.results[key]
    return None


def _get_forces(atoms, key: str):
    if key in atoms.arrays:
        return atoms.arrays[key]
    calc = atoms.calc
    if calc is not None and key == "forces" and "forces" in getattr(calc, "results", {}):
        return calc.results["forces"]
    return None


def _available_keys(atoms) -> str:
    keys = sorted(set(atoms.info) | set(atoms.arrays) - {"numbers", "positions"})
    if atoms.calc is not None:
        keys += [f"{k} (calculator)" for k in sorted(getattr(atoms.calc, "results", {}))]
    return ", ".join(keys) or "none"


def _short(line: str, n: int = 60) -> str:
    line = line.rstrip("\n")
    return line if len(line) <= n else line[: n - 3] + "..."


def xyz_layout_error(path: str | os.PathLike, starts: list | None = None) -> str | None:
    """Check the frame layout of an (extended) XYZ file: an atom-count line, a comment line,
    then that many atom lines, repeated. Returns a message naming the frame and the line
    (1-based) of the first inconsistency, or None when the layout is sound.

    ase scans a file's frame layout before it parses the first frame, so its error for a
    wrong atom count does not say which frame is wrong; this does. ``starts``, when given,
    receives the line number of each frame's atom-count line.
    """
    from ase.io.formats import open_with_compression

    frame = 0
    with open_with_compression(str(path), "r") as fh:
        lines = iter(enumerate(fh, start=1))
        for lineno, line in lines:
            if not line.strip():
                # blank lines are only allowed at the end of the file
                rest = [ln for ln, ll in lines if ll.strip()]
                if rest:
                    return f"line {lineno}: blank line between frames {frame - 1} and {frame} (0-based)"
                return None
            try:
                n = int(line.split()[0]) if len(line.split()) == 1 else None
            except ValueError:
                n = None
            if n is None or n < 0:
                hint = f"; frame {frame - 1} has more atom lines than its atom count says" if frame > 0 else ""
                return f"line {lineno}: expected the atom count of frame {frame} (0-based), got {_short(line)!r}{hint}"
            if starts is not None:
                starts.append(lineno)
            if next(lines, None) is None:
                return f"frame {frame} (0-based, line {lineno}): the file ends before its comment line (truncated?)"
            for k in range(n):
                item = next(lines, None)
                if item is None:
                    return (
                        f"frame {frame} (0-based, line {lineno}): declares {n} atoms but the file ends "
                        f"after {k} atom line(s) (truncated?)"
                    )
                ln, atom_line = item
                fields = atom_line.split()
                if len(fields) <= 1:
                    return (
                        f"frame {frame} (0-based, line {lineno}): declares {n} atoms but line {ln} "
                        f"({_short(atom_line)!r}) is not an atom line; is the atom count right?"
                    )
            frame += 1
    return None


_DELIMS = {"'": "'", '"': '"', "{": "}", "[": "]"}


def split_comment(line: str) -> list[tuple[str, str | None]]:
    """Key/value pairs of an extxyz comment line, read as ase reads them (quotes and
    brackets delimit values, a backslash escapes the next character; but ``key=`` before a
    space is an empty value, as ase writes one); raw string values, None for a bare key."""
    pairs: list[list[list[str]]] = [[[]]]
    cur = None
    escaped = False
    for ch in line.strip():
        if escaped:
            pairs[-1][-1].append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif cur:
            if ch == cur:
                cur = None
                pairs[-1][-1].append("")  # an empty quoted value ends at the next space
            else:
                pairs[-1][-1].append(ch)
        elif ch in _DELIMS:
            cur = _DELIMS[ch]
        elif ch.isspace():
            if pairs[-1] == [[]]:
                continue
            if pairs[-1][-1] == []:
                pairs[-1][-1].append("")  # "key= ": ase writes an empty string so
            pairs.append([[]])
        elif ch == "=":
            if pairs[-1] == [[]]:
                del pairs[-1]
            pairs[-1].append([])
        else:
            pairs[-1][-1].append(ch)
    out = []
    for kv in pairs:
        if not kv or kv == [[]]:
            continue
        key = "".join(kv[0])
        out.append((key, "=".join("".join(v) for v in kv[1:]) if len(kv) > 1 else None))
    return out


def comment_lines(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, text) of the comment line of each frame of an XYZ file whose layout is
    sound (1-based line numbers), read as text without parsing the frames."""
    out = []
    lineno = 0
    with _open_text(path) as fh:
        while True:
            head = fh.readline()
            lineno += 1
            if not head.strip():
                return out
            n = int(head.split()[0])
            out.append((lineno + 1, fh.readline()))
            for _ in range(n):
                fh.readline()
            lineno += 1 + n


def duplicate_comment_key(comment: str) -> tuple[str, list[str | None]] | None:
    """(key, its values) of the first key an extxyz comment line gives more than once
    (ase keeps the last value silently), or None."""
    values: dict[str, list[str | None]] = {}
    for key, value in split_comment(comment):
        values.setdefault(key, []).append(value)
    for key, vals in values.items():
        if len(vals) > 1:
            return key, vals
    return None


def _property_kind(comment: str, name: str) -> str | None:
    """The declared type (R, I, L or S) of per-atom property ``name`` in an extxyz comment
    line's ``Properties=``, or None."""
    for key, value in split_comment(comment):
        if key.lower() == "properties" and value:
            f = value.split(":")
            for prop, kind, _count in zip(f[0::3], f[1::3], f[2::3]):
                if prop == name:
                    return kind.upper()
    return None


#: two atoms closer than this (Å) are refused: no reference data set has them, and a fit
#: or a descriptor fails on them with a misleading reason (out of memory, NaN)
MIN_DISTANCE = 0.1


def closest_pair(atoms, cutoff: float = MIN_DISTANCE) -> tuple[int, int, float] | None:
    """(i, j, distance) of the closest pair of atoms (periodic images included) nearer than
    ``cutoff``, or None."""
    n = len(atoms)
    pos = atoms.positions
    pbc = atoms.pbc
    cell = atoms.cell.array
    if n < 2 and not pbc.any():
        return None
    direct = n <= 400 and (not pbc.any() or (pbc.all() and abs(np.linalg.det(cell)) > 1e-9))
    if direct and pbc.all():
        # heights of the cell: a lattice vector is never shorter than the smallest one
        heights = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        direct = heights.min() > 2 * cutoff
    if direct:
        # every pair, by its minimum image: exact for distances under half the smallest height
        diff = pos[None, :, :] - pos[:, None, :]
        if pbc.all():
            frac = diff @ np.linalg.inv(cell)
            diff = (frac - np.round(frac)) @ cell
        dist = np.linalg.norm(diff, axis=-1)
        dist[np.diag_indices(n)] = np.inf
        k = int(np.argmin(dist))
        i, j = divmod(k, n)
        return (i, j, float(dist[i, j])) if dist[i, j] < cutoff else None
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    if len(d) == 0:
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


def _is_number(value) -> bool:
    """A real number (a bool or a string is not, though Python would convert them)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _read_frames(path: Path) -> list:
    """Read every frame of an extxyz file, naming the frame that fails to parse."""
    import ase.io

    frames = []
    try:
        for atoms in ase.io.iread(str(path), index=":", format="extxyz"):
            frames.append(atoms)
    except Exception as exc:  # ase raises many types for malformed files
        starts: list[int] = []
        try:
            layout = xyz_layout_error(path, starts)
        except (OSError, UnicodeDecodeError, EOFError) as exc2:
            layout = f"cannot be read as text: {type(exc2).__name__}: {exc2}"
        if layout:
            raise DataError(f"{path}: not valid extended XYZ: {layout}") from exc
        where = f", line {starts[len(frames)]}" if len(frames) < len(starts) else ""
        raise DataError(
            f"{path}: frame {len(frames)} (0-based{where}) is not valid extended XYZ: {type(exc).__name__}: {exc}"
        ) from exc
    return frames


def read_structures(
    path: str | os.PathLike,
    energy_key: str = "energy",
    forces_key: str = "forces",
    config_type_key: str = "config_type",
    require_forces: bool = True,
    default_config_type: str = "default",
) -> list:
    """Read and normalise reference structures from an extended XYZ file.

    Parameters
    ----------
    path
        File readable by ``ase.io.read(path, ":", format="extxyz")`` (``.gz`` is fine).
    energy_key, forces_key
        Names of the reference total energy (``atoms.info``) and forces (``atoms.arrays``).
        ``energy``/``forces`` are also found on the SinglePointCalculator that ase >= 3.23
        attaches.
    config_type_key
        ``atoms.info`` key that groups structures; missing values become
        ``default_config_type``.
    require_forces
        Raise when a frame has no forces.

    Returns
    -------
    list of ase.Atoms
        Normalised copies (see module docstring).

    Raises
    ------
    DataError
        Missing or unreadable file, empty file, frame without energy/forces, NaN/inf,
        forces of the wrong shape.
    """
    from ase import Atoms

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an extended XYZ file")
    frames = _read_frames(path)
    if not frames:
        raise DataError(f"{path}: contains no structures")
    try:
        comments = comment_lines(path)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        comments = []
    out = []
    for i, atoms in enumerate(frames):
        where = f"{path}: frame {i} (0-based)"
        where_line = f"{path}: frame {i} (0-based, comment line {comments[i][0]})" if i < len(comments) else where
        if i < len(comments):
            dup = duplicate_comment_key(comments[i][1])
            if dup:
                key, vals = dup
                shown = " and ".join(repr(v) if v is not None else "(no value)" for v in vals)
                raise DataError(
                    f"{where_line}: key '{key}' is given {len(vals)} times in the comment line ({shown}); "
                    "ase would keep only the last; keep one"
                )
        if len(atoms) == 0:
            raise DataError(f"{where}: has no atoms")
        energy = _get_energy(atoms, energy_key)
        if energy is None:
            raise DataError(
                f"{where}: no energy under key '{energy_key}' (keys present: {_available_keys(atoms)}); "
                "set data.energy_key to the right name"
            )
        if isinstance(energy, np.ndarray) and energy.shape in ((), (1,)):
            energy = energy.reshape(())[()]
        if not _is_number(energy):
            kind = "a boolean (T/F)" if isinstance(energy, (bool, np.bool_)) else type(energy).__name__
            raise DataError(f"{where_line}: energy '{energy_key}' = {energy!r} is {kind}, not a number")
        energy = float(energy)
        if not np.isfinite(energy):
            raise DataError(f"{where}: energy '{energy_key}' is {energy}")
        forces = _get_forces(atoms, forces_key)
        if forces is None:
            if require_forces:
                raise DataError(
                    f"{where}: no forces under key '{forces_key}' (keys present: {_available_keys(atoms)}); "
                    "set data.forces_key to the right name"
                )
        else:
            raw = np.asarray(forces)
            declared = _property_kind(comments[i][1], forces_key) if i < len(comments) else None
            if declared in ("L", "S"):  # ase's calculator turns T/F forces into 1.0/0.0
                raw = np.asarray(raw, dtype=bool if declared == "L" else object)
            if raw.dtype.kind not in "iuf":
                kind = "booleans (T/F)" if raw.dtype.kind == "b" else f"of type {raw.dtype}"
                raise DataError(f"{where_line}: forces '{forces_key}' are {kind}, not numbers")
            forces = raw.astype(float)
            if forces.shape != (len(atoms), 3):
                raise DataError(f"{where}: forces '{forces_key}' have shape {forces.shape}, expected ({len(atoms)}, 3)")
            if not np.all(np.isfinite(forces)):
                bad = int(np.argwhere(~np.isfinite(forces))[0][0])
                raise DataError(f"{where}: forces '{forces_key}' contain NaN/inf (atom {bad})")
        if not np.all(np.isfinite(atoms.positions)):
            bad = int(np.argwhere(~np.isfinite(atoms.positions))[0][0])
            raise DataError(f"{where_line}: positions contain NaN/inf (atom {bad})")
        if not np.all(np.isfinite(atoms.cell.array)):
            raise DataError(f"{where_line}: the cell (Lattice) contains NaN/inf")
        vecs = atoms.cell.array[atoms.pbc]
        if atoms.pbc.any() and np.linalg.det(vecs @ vecs.T) < 1e-6:
            raise DataError(
                f"{where_line}: periodic (pbc {''.join('T' if p else 'F' for p in atoms.pbc)}) "
                "but its cell (Lattice) has no extent along a periodic direction"
            )
        pair = closest_pair(atoms)
        if pair:
            a, b, d = pair
            raise DataError(
                f"{where_line}: atoms {a} and {b} are {d:.3g} Å apart (closer than {MIN_DISTANCE} Å: "
                "overlapping atoms, or coordinates in the wrong unit?)"
            )
        new = Atoms(
            numbers=atoms.numbers.copy(),
            positions=atoms.positions.copy(),
            cell=atoms.cell.copy(),
            pbc=atoms.pbc.copy(),
        )
        ct = atoms.info.get(config_type_key, default_config_type)
        new.info[CT] = str(ct)
        new.info[REF_E] = energy
        if forces is not None:
            new.arrays[REF_F] = forces.copy()
        new.info["source_index"] = i
        out.append(new)
    return out


def write_structures(path: str | os.PathLike, frames: Sequence) -> None:
    """Write normalised structures as extended XYZ (atomically)."""
    import ase.io

    with atomic_output(path) as tmp:
        ase.io.write(str(tmp), list(frames), format="extxyz")


def read_normalised(path: str | os.PathLike) -> list:
    """Read a file written by :func:`write_structures` (keys already normalised)."""
    return read_structures(path, energy_key=REF_E, forces_key=REF_F, require_forces=False)


def species_of_file(path: str | os.PathLike) -> list[int]:
    """Sorted atomic numbers in an extended XYZ file, read from its species column without
    parsing the frames with ase (a fit job needs only this, and importing ase.io costs ~1 s
    of a job's start-up). Falls back to :func:`read_normalised` for anything unusual."""
    from ase.data import atomic_numbers  # cheap: ase's package, not ase.io

    symbols: set[str] = set()
    try:
        for _, frame_symbols in frames_as_text(path):
            symbols.update(frame_symbols)
        return sorted(atomic_numbers[s] for s in symbols)
    except (ValueError, KeyError, IndexError):
        return species(read_normalised(path))


def frames_as_text(path: str | os.PathLike):
    """``(comment line, chemical symbols)`` of every frame of an extxyz file, read as text
    (for jobs that need no more and should not import ase.io). Raises ValueError, KeyError or
    IndexError on anything unusual (callers fall back to ase)."""
    with _open_text(path) as fh:
        while True:
            head = fh.readline()
            if not head.strip():
                break
            n = int(head)
            comment = fh.readline()
            col = _species_column(comment)
            yield comment, [fh.readline().split()[col] for _ in range(n)]


def _open_text(path: str | os.PathLike):
    """Open a (possibly gzip/bz2/xz-compressed) text file for reading."""
    suffix = Path(path).suffix
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rt")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rt")
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rt")
    return open(path)


def _species_column(comment: str) -> int:
    """Index of the species column of an extxyz atom line (from its ``Properties=``)."""
    import re

    m = re.search(r"Properties=([^\s]+)", comment)
    if not m:
        return 0
    fields = m.group(1).split(":")
    col = 0
    for name, _kind, count in zip(fields[0::3], fields[1::3], fields[2::3]):
        if name == "species":
            return col
        col += int(count)
    raise ValueError("no species column")


def species(frames: Sequence) -> list[int]:
    """Sorted atomic numbers present in ``frames``."""
    return sorted({int(z) for a in frames for z in a.numbers})
