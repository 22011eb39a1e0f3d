"""The weighted linear least squares of a SNAP fit on the compressed descriptor blocks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .params import group_weight, resolve_params


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
