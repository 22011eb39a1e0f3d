"""Is one potential better than another on the same test set? A paired bootstrap over structures.

Test sets of published data are small (Zuo 2020 Si: 25 structures), and a difference of a few
per cent between two potentials' RMSEs on them can be the luck of which structures were drawn.
:func:`paired_bootstrap` resamples the structures (with replacement, the same draw for both
potentials, so what they share cancels) and reports, per metric, both values, their difference
and its 95 % interval, and how often the second potential came out lower.

Command line, on two finished runs with the same test set (their ``best/test_predictions.npz``)::

    python -m potune.evaluate.compare results/<run_a> results/<run_b> [--samples 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metrics import Residuals

#: the metrics compared, as (key, label, scale to the printed unit)
METRICS = (
    ("energy_rmse_mev", "E RMSE (meV/atom)", 1.0),
    ("force_rmse", "F RMSE (eV/Å)", 1.0),
    ("loss", "loss", 1.0),
)


def residuals_from_predictions(preds: dict, n_atoms: Sequence[int], has_forces: Sequence[bool]) -> Residuals:
    """The per-structure residuals of a saved prediction file (``energy_*_per_atom`` per
    structure, ``force_*`` concatenated over the structures with forces, in order), given each
    structure's atom count and whether it has reference forces (from the data file)."""
    e_ref, e_pred = np.asarray(preds["energy_ref_per_atom"]), np.asarray(preds["energy_pred_per_atom"])
    if len(e_ref) != len(n_atoms):
        raise ValueError(f"the predictions hold {len(e_ref)} structures, the data file {len(n_atoms)}")
    df = np.asarray(preds["force_pred"], float) - np.asarray(preds["force_ref"], float)
    want = 3 * sum(int(n) for n, f in zip(n_atoms, has_forces) if f)
    if df.size != want:
        raise ValueError(f"the predictions hold {df.size} force components, the data file {want}")
    r, at = Residuals(), 0
    for i, (n, f) in enumerate(zip(n_atoms, has_forces)):
        d = df[at : at + 3 * n].reshape(n, 3) if f else None
        at += 3 * n if f else 0
        r.add(str(preds["config_type"][i]), int(n), float(e_pred[i] - e_ref[i]) * n, d)
    return r


def _sums(r: Residuals) -> dict[str, np.ndarray]:
    """Per structure: squared energy residual per atom, squared dE/sqrt(N), summed squared force
    residuals and force components (what every metric of :mod:`.metrics` is made of)."""
    n = np.asarray(r.n_atoms, float)
    de = np.asarray(r.d_energy, float)
    return {
        "e2": (de / n) ** 2,
        "esq2": de**2 / n,
        "f2": np.array([float((f * f).sum()) for f in r.d_forces]),
        "fc": np.array([f.size for f in r.d_forces], float),
    }


def _metrics(s: dict[str, np.ndarray], w: np.ndarray, kind: str, alpha: float) -> dict[str, np.ndarray]:
    """The metrics for each row of structure weights ``w`` (counts of a resample)."""
    n_s = w.sum(axis=1)
    e = np.sqrt(w @ s["e2"] / n_s)
    fc = w @ s["fc"]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.sqrt(w @ s["f2"] / fc)
    if kind == "weighted":
        loss = alpha * np.sqrt(w @ s["esq2"] / n_s) + (1.0 - alpha) * f
    elif kind == "gamma":
        loss = 1000.0 * e + 1000.0 * f / 30.0
    else:
        raise ValueError(f"unknown loss kind {kind!r}")
    return {"energy_rmse_mev": 1000.0 * e, "force_rmse": f, "loss": loss}


def paired_bootstrap(
    a: Residuals, b: Residuals, kind: str = "weighted", alpha: float = 0.5, samples: int = 10000, seed: int = 0
) -> dict[str, dict]:
    """Compare potentials ``a`` and ``b`` on the same structures by a paired bootstrap.

    Returns, per metric (``energy_rmse_mev``, ``force_rmse``, ``loss`` of ``kind``/``alpha``):
    ``a``, ``b`` (on the whole set), ``diff`` (b - a), ``low``/``high`` (the 2.5 and 97.5
    percentiles of b - a over ``samples`` resamples of the structures) and ``b_lower`` (the
    fraction of resamples in which b's value is lower). Deterministic given ``seed``.
    """
    if a.n_atoms != b.n_atoms or a.config_types != b.config_types:
        raise ValueError("the two residual sets are not of the same structures")
    sa, sb = _sums(a), _sums(b)
    m = len(a.n_atoms)
    whole = np.ones((1, m))
    w = np.random.default_rng(seed).multinomial(m, np.full(m, 1.0 / m), size=int(samples)).astype(float)
    full_a, full_b = _metrics(sa, whole, kind, alpha), _metrics(sb, whole, kind, alpha)
    boot_a, boot_b = _metrics(sa, w, kind, alpha), _metrics(sb, w, kind, alpha)
    out = {}
    for key, _, _ in METRICS:
        d = boot_b[key] - boot_a[key]
        d = d[np.isfinite(d)]
        out[key] = {
            "a": float(full_a[key][0]),
            "b": float(full_b[key][0]),
            "diff": float(full_b[key][0] - full_a[key][0]),
            "low": float(np.percentile(d, 2.5)) if d.size else float("nan"),
            "high": float(np.percentile(d, 97.5)) if d.size else float("nan"),
            "b_lower": float(np.mean(d < 0)) if d.size else float("nan"),
        }
    return out


def run_residuals(run_dir: str | os.PathLike) -> tuple[Residuals, dict]:
    """The test residuals of a finished run's refitted potential (``best/test_predictions.npz``
    of the structures of ``split/test.xyz``) and the run's recorded configuration."""
    from .. import data as D
    from ..io import read_yaml

    run_dir = Path(run_dir)
    test = run_dir / "split" / "test.xyz"  # the structures the predictions are of, in order
    preds_file = run_dir / "best" / "test_predictions.npz"
    if not test.is_file() or not preds_file.is_file():
        raise FileNotFoundError(
            f"{run_dir}: no test predictions ({preds_file} with {test}): not a finished run with data.test"
        )
    cfg = read_yaml(run_dir / "run" / "config.yaml")
    frames = D.read_normalised(test)
    with np.load(preds_file, allow_pickle=False) as z:
        preds = dict(z)
    has_f = [D.REF_F in a.arrays for a in frames]
    return residuals_from_predictions(preds, [len(a) for a in frames], has_f), cfg


def format_table(result: dict[str, dict], name_a: str, name_b: str, samples: int) -> str:
    lines = [
        f"a: {name_a}",
        f"b: {name_b}",
        f"paired bootstrap over the test structures, {samples} resamples",
        "",
        "| metric | a | b | b - a | 95 % interval of b - a | b lower in |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, _ in METRICS:
        r = result[key]
        lines.append(
            f"| {label} | {r['a']:.4g} | {r['b']:.4g} | {r['diff']:+.3g} | [{r['low']:+.3g}, {r['high']:+.3g}] | "
            f"{100 * r['b_lower']:.0f} % |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m potune.evaluate.compare",
        description="Compare the refitted potentials of two runs on their common test set (paired bootstrap).",
    )
    ap.add_argument("run_a", help="results/<run>: a finished run with a test set")
    ap.add_argument("run_b", help="another, with the same test set")
    ap.add_argument("--samples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        ra, cfg = run_residuals(args.run_a)
        rb, cfg_b = run_residuals(args.run_b)
    except (FileNotFoundError, ValueError) as exc:
        print(f"potune: {exc}", file=sys.stderr)
        return 2
    if cfg["loss"] != cfg_b["loss"]:
        print(f"potune: note: the runs' losses differ ({cfg['loss']} vs {cfg_b['loss']}); using a's", file=sys.stderr)
    try:
        result = paired_bootstrap(
            ra, rb, cfg["loss"]["kind"], float(cfg["loss"].get("alpha", 0.5)), args.samples, args.seed
        )
    except ValueError as exc:
        print(f"potune: {args.run_a} and {args.run_b}: {exc} (not the same test set?)", file=sys.stderr)
        return 2
    print(format_table(result, args.run_a, args.run_b, args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
