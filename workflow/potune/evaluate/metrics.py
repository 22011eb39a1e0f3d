"""Error metrics and loss functions.

Conventions (as in the XPOT and PPSO papers):

- energy RMSE per atom: ``sqrt(mean_s ((E_pred_s - E_ref_s) / N_s)^2)``, reported in meV/atom;
- force RMSE: over all Cartesian force components, eV/Å;
- ``weighted`` loss (XPOT eq. 8): ``alpha * RMSE(dE / sqrt(N)) + (1 - alpha) * RMSE(dF)``
  (eV/sqrt(atom) and eV/Å);
- ``gamma`` loss (PPSO): ``Gamma_E + Gamma_F / 30`` with Gamma_E the energy RMSE in
  meV/atom and Gamma_F the force RMSE in meV/Å.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

LOSS_KINDS = ("weighted", "gamma")


def rmse(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float).ravel()
    return float(np.sqrt(np.mean(x * x))) if x.size else float("nan")


def mae(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float).ravel()
    return float(np.mean(np.abs(x))) if x.size else float("nan")


def weighted_loss(d_energy_per_sqrt_atom: np.ndarray, d_forces: np.ndarray, alpha: float) -> float:
    """XPOT loss ``alpha * RMSE(dE/sqrt(N)) + (1 - alpha) * RMSE(dF)``.

    A term with no data (no forces in the validation set) counts as zero when its weight is
    zero and makes the loss NaN otherwise.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    e = rmse(d_energy_per_sqrt_atom) if alpha > 0 else 0.0
    f = rmse(d_forces) if alpha < 1 else 0.0
    return float(alpha * e + (1.0 - alpha) * f)


def gamma_loss(energy_rmse_mev_per_atom: float, force_rmse_ev_per_a: float) -> float:
    """PPSO loss ``Gamma_E + Gamma_F / 30`` (meV/atom and meV/Å)."""
    return float(energy_rmse_mev_per_atom + 1000.0 * force_rmse_ev_per_a / 30.0)


@dataclass
class Residuals:
    """Per-structure energy residuals and per-component force residuals of one data set."""

    config_types: list[str] = field(default_factory=list)
    n_atoms: list[int] = field(default_factory=list)
    d_energy: list[float] = field(default_factory=list)  # total energy residual, eV
    d_forces: list[np.ndarray] = field(default_factory=list)  # (N, 3) or empty when no reference

    def add(self, config_type: str, n_atoms: int, d_energy: float, d_forces: np.ndarray | None) -> None:
        self.config_types.append(config_type)
        self.n_atoms.append(int(n_atoms))
        self.d_energy.append(float(d_energy))
        self.d_forces.append(np.zeros((0, 3)) if d_forces is None else np.asarray(d_forces, float))

    def subset(self, mask: Sequence[bool]) -> Residuals:
        r = Residuals()
        for m, ct, n, de, df in zip(mask, self.config_types, self.n_atoms, self.d_energy, self.d_forces):
            if m:
                r.add(ct, n, de, df)
        return r

    def summary(self) -> dict:
        """Energy (meV/atom) and force (eV/Å) RMSE/MAE and counts."""
        n = np.array(self.n_atoms, dtype=float)
        de = np.array(self.d_energy, dtype=float)
        df = np.concatenate([f.ravel() for f in self.d_forces]) if self.d_forces else np.zeros(0)
        return {
            "n_structures": len(self.n_atoms),
            "n_atoms": int(n.sum()),
            "energy_rmse_mev": 1000.0 * rmse(de / n) if len(n) else float("nan"),
            "energy_mae_mev": 1000.0 * mae(de / n) if len(n) else float("nan"),
            "force_rmse": rmse(df),
            "force_mae": mae(df),
        }

    def loss(self, kind: str, alpha: float = 0.5) -> float:
        n = np.array(self.n_atoms, dtype=float)
        de = np.array(self.d_energy, dtype=float)
        df = np.concatenate([f.ravel() for f in self.d_forces]) if self.d_forces else np.zeros(0)
        if kind == "weighted":
            return weighted_loss(de / np.sqrt(n), df, alpha)
        if kind == "gamma":
            return gamma_loss(1000.0 * rmse(de / n), rmse(df))
        raise ValueError(f"unknown loss kind {kind!r}; choose one of {', '.join(LOSS_KINDS)}")

    def by_config_type(self) -> dict[str, dict]:
        cts = sorted(set(self.config_types))
        return {ct: self.subset([c == ct for c in self.config_types]).summary() for ct in cts}

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "n_atoms": np.array(self.n_atoms),
            "d_energy": np.array(self.d_energy),
        }


def combine_folds(fold_results: Sequence[dict]) -> dict:
    """Mean over cross-validation folds of every numeric metric (and the loss).

    XPOT v1 returned the last fold's loss; the mean is the estimate of the generalisation error.
    """
    keys = [k for k, v in fold_results[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: float(np.mean([fr[k] for fr in fold_results])) for k in keys}
