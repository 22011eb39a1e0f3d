"""SNAP hyperparameters: names (plain, per element, per config_type), defaults, checks of
values and of a configuration, the canonical descriptor specification and the cache keys.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from ...errors import ConfigError
from ...io import file_sha256

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
DESCRIPTOR_SETTINGS = ("bzeroflag", "switchflag", "chemflag")


SETTINGS_DEFAULTS = {
    "bzeroflag": True,
    "switchflag": True,
    "chemflag": False,
    "descriptor_cache": True,
    "svd_rcond": 1.0e-13,
}


_QUALIFIED = re.compile(r"^([A-Za-z_]\w*)\[([^\[\]]+)\]$")


def split_name(name: str) -> tuple[str, str | None]:
    """``"eweight[AIMD-NVT]"`` -> ``("eweight", "AIMD-NVT")``; ``"rcutfac"`` -> ``("rcutfac", None)``."""
    m = _QUALIFIED.match(name)
    return (m.group(1), m.group(2)) if m else (name, None)


def default_of(name: str):
    """Default of a (possibly per-element/per-config_type) hyperparameter, None if unknown."""
    return HYPERPARAMETERS.get(split_name(name)[0])


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
        "twojmax": [
            ("must be >= 0", lambda v: v >= 0),
            ("must be <= 20 (LAMMPS memory grows as twojmax^5)", lambda v: v <= 20),
        ],
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
        **({"chemflag": True} if s.get("chemflag") else {}),  # absent when off: caches made before stay valid
    }


def spec_key(spec: dict, data_key: str = "") -> str:
    """The cache key: a hash of the descriptor specification and the data key."""
    blob = json.dumps({"spec": spec, "data": data_key}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_key(cfg: dict) -> str:
    """A hash of what determines every fold's training data: the data files' contents, the
    data keys and the split settings (the fold number is in the cache path), and the inner
    cross-validation of a nested search with ``snap.inner.folds`` > 1 (:func:`.nested.cv_spec`)."""
    h = hashlib.sha256()
    d = cfg["data"]
    for k in ("train", "validation"):
        if d.get(k):
            h.update(f"{k}:{file_sha256(d[k])}".encode())
    h.update(
        json.dumps(
            {"keys": [d.get("energy_key"), d.get("forces_key"), d.get("config_type_key")], "split": cfg["split"]},
            sort_keys=True,
            default=str,
        ).encode()
    )
    from .nested import cv_spec

    cv = cv_spec(cfg)
    if cv:  # snap.inner.folds > 1: these caches hold the CV blocks (folds 1: the key as before)
        h.update(json.dumps({"cv": cv}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def element_values(spec: dict, base: str, symbols: Sequence[str]) -> list[float]:
    """Per-element ``radelem``/``wj`` for ``symbols`` (overrides, else the global value)."""
    d = spec[base]
    return [float(d.get(s, d["*"])) for s in symbols]


def group_weight(params: dict, base: str, config_type: str) -> float:
    """``eweight``/``fweight`` of one config_type (its override, else the global value)."""
    return float(params.get(f"{base}[{config_type}]", params[base]))


def n_bispectrum(twojmax: int) -> int:
    """Number of linear bispectrum components for band limit ``twojmax`` (30 for 6)."""
    n = 0
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            n += sum(1 for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2) if j >= j1)
    return n


def descriptor_length(params: dict, settings: dict, species_z: Sequence[int]) -> int | None:
    """Length of one atom's descriptor (linear, plus quadratic terms for qSNAP; with
    ``snap.chemflag`` one bispectrum per ordered triple of elements: ``n x n_elements^3``)."""
    p = resolve_params(params)
    n = n_bispectrum(int(p["twojmax"]))
    if (settings or {}).get("chemflag"):
        return n * max(1, len(species_z)) ** 3
    return n + n * (n + 1) // 2 if p["quadratic"] else n


def _config_types(cfg: dict) -> tuple[set[str], set[str]] | None:
    """config_types and elements of the training data (None if it cannot be read here)."""
    from ... import data as D

    d = cfg.get("data", {})
    path = d.get("train")
    if not path or not Path(path).is_file():
        return None
    try:
        frames = D.read_structures(
            path,
            energy_key=d.get("energy_key", "energy"),
            forces_key=d.get("forces_key", "forces"),
            config_type_key=d.get("config_type_key", "config_type"),
            require_forces=False,
        )
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
    if (cfg.get("snap") or {}).get("chemflag"):
        quad = [v for k, n, v in items if n == "quadratic"]
        if "quadratic" in space.names and any(_as_bool(v, "quadratic") for v in quad) or fixed.get("quadratic"):
            raise ConfigError(
                "snap.chemflag: explicit multi-element SNAP is linear only (FitSNAP has no quadratic chemflag)"
            )
    if "ridge_alpha" in names and "solver" not in names:
        raise ConfigError(
            "ridge_alpha: only used with solver ridge; fix or search 'solver' too (e.g. fixed.solver: ridge)"
        )
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
            raise ConfigError(
                f"{name}: no structure of config_type {q!r} in data.train (config_types: {', '.join(sorted(cts))})"
            )
        if base in PER_ELEMENT and q not in elements:
            raise ConfigError(f"{name}: no element {q!r} in data.train (elements: {', '.join(sorted(elements))})")
