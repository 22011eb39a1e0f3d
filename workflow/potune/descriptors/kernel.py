"""Statistics of the SOAP kernel distribution (PPSO's descriptor-stage objective).

For ``M`` randomly chosen environments against all ``N`` environments (self-pairs
excluded; on multi-species data only pairs with the same central species, as in GAP), the
kernel ``k = (q_i . q_j)^zeta`` of normalised SOAP vectors: mean, standard deviation,
skewness and a histogram. Computed in blocks of columns (one matrix product per block) so
that memory stays below a bound however large ``N`` is; the moments are accumulated about a
pivot to keep them accurate; the choice of the ``M`` rows is seeded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

OBJECTIVES = ("std_skew", "std", "weighted")


@dataclass
class KernelStats:
    mean: float
    std: float
    skew: float
    n_pairs: int
    n_sample: int
    n_env: int
    zeta: float
    counts: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = self.counts.tolist()
        d["edges"] = self.edges.tolist()
        return d

    def histogram_table(self):
        """The histogram as a table (bin edges, centre, count, density)."""
        import pandas as pd

        width = np.diff(self.edges)
        total = max(int(self.counts.sum()), 1)
        return pd.DataFrame(
            {
                "bin_low": self.edges[:-1],
                "bin_high": self.edges[1:],
                "bin_centre": 0.5 * (self.edges[:-1] + self.edges[1:]),
                "count": self.counts,
                "density": self.counts / (total * width),
            }
        )


def _power(g: np.ndarray, zeta: float, tmp: np.ndarray) -> np.ndarray:
    """``g ** zeta`` in place (``tmp``: a scratch array of the same shape).

    Overlaps rounded past +-1 are clipped. An integer zeta is done by repeated squaring; for a
    non-integer zeta negative overlaps are set to 0 (a real power of a negative number is
    undefined, as in gap_fit's dot-product kernel).
    """
    np.clip(g, -1.0, 1.0, out=g)
    if float(zeta).is_integer() and zeta >= 1:
        e = int(zeta) - 1
        if e:
            np.copyto(tmp, g)
        while e:
            if e & 1:
                g *= tmp
            e >>= 1
            if e:
                tmp *= tmp
    else:
        np.maximum(g, 0.0, out=g)
        np.power(g, float(zeta), out=g)
    return g


def histogram_edges(zeta: float, bins: int) -> np.ndarray:
    """Fixed bin edges: [0, 1] unless an odd integer zeta allows negative kernels ([-1, 1])."""
    odd = float(zeta).is_integer() and int(zeta) % 2 == 1
    return np.linspace(-1.0 if odd else 0.0, 1.0, int(bins) + 1)


def sample_rows(n_env: int, n_sample: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n_sample, n_env)`` environments, drawn without replacement."""
    rng = np.random.default_rng(seed)
    m = min(int(n_sample), int(n_env))
    return np.sort(rng.choice(n_env, size=m, replace=False))


def kernel_stats(
    X: np.ndarray,
    zeta: float,
    n_sample: int = 3000,
    seed: int = 0,
    bins: int = 100,
    groups: np.ndarray | None = None,
    max_block_mb: float = 256.0,
) -> KernelStats:
    """Mean, std, skewness and histogram of ``(q_i . q_j)^zeta``.

    Parameters
    ----------
    X
        (N, D) SOAP vectors; rows are normalised here (a zero row stays zero).
    zeta
        Kernel exponent.
    n_sample
        ``M``: rows drawn at random (all rows if ``N <= M``); each is paired with every other
        environment of its group.
    seed
        Seed of the choice of rows.
    bins
        Histogram bins over :func:`histogram_edges`.
    groups
        (N,) labels (central species); pairs are only taken within a group. None: one group.
    max_block_mb
        Upper bound on the memory of one block of the kernel matrix (MiB).

    Returns
    -------
    KernelStats
        Population moments (skewness ``m3 / m2^1.5``, as ``scipy.stats.skew``).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"need at least two environments, got array of shape {X.shape}")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    X = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    n_env = len(X)
    groups = np.zeros(n_env, dtype=int) if groups is None else np.asarray(groups)
    rows = sample_rows(n_env, n_sample, seed)
    edges = histogram_edges(zeta, bins)
    lo, scale = edges[0], bins / (edges[-1] - edges[0])
    counts = np.zeros(bins, dtype=np.int64)
    s1 = s2 = s3 = 0.0
    n = 0
    pivot = None
    for g in np.unique(groups[rows]):
        cols = np.flatnonzero(groups == g)
        r = rows[groups[rows] == g]
        if len(cols) < 2:
            continue
        S = X[r]
        self_pos = np.searchsorted(cols, r)  # position of each sampled row among the columns
        # three work arrays per block element: kernel (float64), scratch (float64), bin (int32)
        block = max(1, min(len(cols), int(max_block_mb * 2**20 / (20 * len(r)))))
        kbuf = np.empty(len(r) * block)
        tbuf = np.empty(len(r) * block)
        ibuf = np.empty(len(r) * block, dtype=np.int32)
        for c0 in range(0, len(cols), block):
            c1 = min(c0 + block, len(cols))
            size = len(r) * (c1 - c0)
            K = kbuf[:size].reshape(len(r), c1 - c0)
            T = tbuf[:size].reshape(len(r), c1 - c0)
            np.matmul(S, X[cols[c0:c1]].T, out=K)
            _power(K, zeta, T)
            inside = np.flatnonzero((self_pos >= c0) & (self_pos < c1))
            self_vals = K[inside, self_pos[inside] - c0].copy()
            # histogram: bin index of every value, then one bincount
            np.subtract(K, lo, out=T)
            T *= scale
            I = ibuf[:size]
            np.copyto(I, T.ravel(), casting="unsafe")
            np.clip(I, 0, bins - 1, out=I)
            counts += np.bincount(I, minlength=bins)
            sidx = np.clip(((self_vals - lo) * scale).astype(np.int64), 0, bins - 1)
            np.subtract.at(counts, sidx, 1)
            # moments about a pivot (the first block's mean), self-pairs taken out again
            if pivot is None:
                pivot = float(K.mean())
            K -= pivot
            np.multiply(K, K, out=T)
            sv = self_vals - pivot
            s1 += float(K.sum()) - float(sv.sum())
            s2 += float(T.sum()) - float((sv**2).sum())
            s3 += float(np.einsum("ij,ij->", T, K)) - float((sv**3).sum())
            n += size - len(inside)
    if n == 0:
        raise ValueError("no pairs of environments with the same central species")
    m1 = s1 / n
    mean = pivot + m1
    m2 = max(s2 / n - m1 * m1, 0.0)
    m3 = s3 / n - 3 * m1 * s2 / n + 2 * m1**3
    std = math.sqrt(m2)
    skew = m3 / m2**1.5 if m2 > 0 else 0.0
    return KernelStats(
        float(mean), float(std), float(skew), int(n), int(len(rows)), int(n_env), float(zeta), counts, edges
    )


def kernel_values_brute_force(
    X: np.ndarray, zeta: float, rows: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Every kernel value of ``rows`` against all other same-group environments, one pair
    at a time (a reference for tests; O(M N D) Python-level work)."""
    X = np.asarray(X, dtype=float)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    groups = np.zeros(len(X), dtype=int) if groups is None else np.asarray(groups)
    out = []
    for i in rows:
        for j in range(len(X)):
            if j == i or groups[j] != groups[i]:
                continue
            d = min(max(float(np.dot(X[i], X[j])), -1.0), 1.0)
            if not float(zeta).is_integer():
                d = max(d, 0.0)
            out.append(d**zeta)
    return np.array(out)


def kernel_objective(stats: KernelStats, cfg: dict | None = None) -> dict:
    """The stage-1 loss (minimised) and its terms.

    ``cfg`` (the ``kernel.objective`` section): ``kind``

    - ``std_skew`` (default): ``-std / (1 + skew_weight * |skew|)`` — a wide kernel
      distribution that is not dominated by a tail (PPSO found std alone over-weights the
      tails, its Fig. 7);
    - ``std``: ``-std`` (PPSO's plain criterion);
    - ``weighted``: ``-std_weight * std + skew_weight * |skew|``.
    """
    cfg = cfg or {}
    kind = cfg.get("kind", "std_skew")
    ws = float(cfg.get("skew_weight", 1.0))
    wd = float(cfg.get("std_weight", 1.0))
    if kind == "std_skew":
        loss = -stats.std / (1.0 + ws * abs(stats.skew))
    elif kind == "std":
        loss = -stats.std
    elif kind == "weighted":
        loss = -wd * stats.std + ws * abs(stats.skew)
    else:
        raise ValueError(f"kernel.objective.kind: {kind!r} is not one of {', '.join(OBJECTIVES)}")
    return {
        "loss": float(loss),
        "kernel_mean": stats.mean,
        "kernel_std": stats.std,
        "kernel_skew": stats.skew,
        "kernel_abs_skew": abs(stats.skew),
    }
