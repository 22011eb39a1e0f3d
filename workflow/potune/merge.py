"""Deep merge of configuration mappings (defaults under a user's file, a stage's optimiser
over the top-level one)."""

from __future__ import annotations

import copy

#: sections a user's file gives whole (never merged key by key with the defaults)
REPLACE_WHOLE = {"space", "fixed"}


def deep_merge(base: dict, override: dict, _path: str = "") -> dict:
    """``override`` merged into a copy of ``base``: mappings key by key, everything else
    (lists, scalars, and the sections in :data:`REPLACE_WHOLE`) replaced."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in REPLACE_WHOLE:
            out[k] = deep_merge(out[k], v, f"{_path}{k}.")
        else:
            out[k] = copy.deepcopy(v)
    return out
