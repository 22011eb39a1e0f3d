"""Published reference errors (config key ``reference``) shown beside ours in
``best/test_errors.csv`` and ``summary.md``.

``reference`` is one mapping or a list of them, each with ``label``, ``energy_rmse_mev``,
``force_rmse`` and optional ``source`` and ``protocol`` notes. :func:`references` turns any
of these forms into the list of references that have at least one number.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

#: keys of one reference
REFERENCE_KEYS = ("label", "energy_rmse_mev", "force_rmse", "source", "protocol")
#: the label of a reference that gives none
DEFAULT_LABEL = "published"


def _entries(value: Any) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [("reference", value)]
    if isinstance(value, list):
        return [(f"reference[{i}]", v) for i, v in enumerate(value)]
    raise ConfigError(f"reference: expected a mapping or a list of mappings, got {type(value).__name__}")


def references(value: Any) -> list[dict]:
    """The references of config value ``value`` (a mapping, a list of mappings, or None), each
    a dict with every key of :data:`REFERENCE_KEYS` (label defaults to ``published``,
    the others to None); references with neither number are left out.

    Raises
    ------
    ConfigError
        Naming the entry and key of an unknown key, a non-string label or note, or a number
        that is not a positive finite number.
    """
    out = []
    for where, entry in _entries(value):
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with {', '.join(REFERENCE_KEYS)}")
        unknown = [k for k in entry if k not in REFERENCE_KEYS]
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key; known: {', '.join(REFERENCE_KEYS)}")
        ref = {k: entry.get(k) for k in REFERENCE_KEYS}
        if ref["label"] is None:
            ref["label"] = DEFAULT_LABEL
        for k in ("label", "source", "protocol"):
            if ref[k] is not None and not isinstance(ref[k], str):
                raise ConfigError(f"{where}.{k}: expected text, got {ref[k]!r}")
        for k in ("energy_rmse_mev", "force_rmse"):
            v = ref[k]
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{where}.{k}: expected a positive number or null, got {v!r}")
            ref[k] = float(v)
        if ref["energy_rmse_mev"] is not None or ref["force_rmse"] is not None:
            out.append(ref)
    return out


def note(ref: dict) -> str:
    """The reference's ``source`` and ``protocol`` notes as one text ('' if neither)."""
    return "; ".join(ref[k] for k in ("source", "protocol") if ref.get(k))


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing."""
    if ours is None or theirs is None:
        return None
    return float(ours) / float(theirs)


def comparison_rows(ours: dict, value: Any) -> list[dict]:
    """One row per reference: its label, note, numbers and the ratios ours / reference.

    Parameters
    ----------
    ours
        Our overall test errors (``energy_rmse_mev``, ``force_rmse``).
    value
        The config's ``reference`` value.
    """
    rows = []
    for ref in references(value):
        rows.append(
            {
                "label": ref["label"],
                "note": note(ref),
                "energy_rmse_mev": ref["energy_rmse_mev"],
                "force_rmse": ref["force_rmse"],
                "energy_ratio": ratio(ours.get("energy_rmse_mev"), ref["energy_rmse_mev"]),
                "force_ratio": ratio(ours.get("force_rmse"), ref["force_rmse"]),
            }
        )
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown_rows(ours: dict, value: Any) -> list[str]:
    """Rows of summary.md's test-set table (columns: who, E RMSE, F RMSE, ours/reference E,
    ours/reference F), one per reference, the note in brackets after the label."""
    lines = []
    for r in comparison_rows(ours, value):
        who = r["label"] + (f" ({r['note']})" if r["note"] else "")
        lines.append(
            f"| {who} | {_fmt(r['energy_rmse_mev'], 'g')} | {_fmt(r['force_rmse'], 'g')} "
            f"| {_fmt(r['energy_ratio'], '.2f')} | {_fmt(r['force_ratio'], '.2f')} |"
        )
    return lines
