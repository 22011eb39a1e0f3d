"""Train/validation splits: per-config_type random hold-out and k folds (seeded)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .read import ALWAYS_TRAIN, CT


def _group_by_config_type(frames: Sequence, always_train: Sequence[str]) -> tuple[dict, list]:
    groups: dict[str, list[int]] = defaultdict(list)
    pinned: list[int] = []
    for i, a in enumerate(frames):
        ct = a.info.get(CT, "default")
        if ct in always_train or len(a) == 1:
            pinned.append(i)
        else:
            groups[ct].append(i)
    return dict(sorted(groups.items())), pinned


def seeded_subset(n: int, cap: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``cap`` of ``n`` items (all when ``cap``
    is None or not smaller than ``n``)."""
    if cap is None or int(cap) >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(int(seed)).choice(n, int(cap), replace=False))


def training_subset(
    frames: Sequence, cap: int | None, seed: int, always_train: Sequence[str] = ALWAYS_TRAIN
) -> list[int]:
    """Indices of a seeded subset of ``cap`` training structures (stage 1's proxy fits): the
    isolated atoms and ``always_train`` config_types, which the e0 needs, are kept beside the
    ``cap`` structures drawn from the others."""
    groups, pinned = _group_by_config_type(frames, always_train)
    rest = sorted(i for idx in groups.values() for i in idx)
    return sorted(pinned + [rest[j] for j in seeded_subset(len(rest), cap, seed)])


def random_split(
    frames: Sequence, fraction: float, seed: int, always_train: Sequence[str] = ALWAYS_TRAIN
) -> tuple[list[int], list[int]]:
    """Split structure indices into train/validation, a random ``fraction`` per config_type.

    Each config_type with at least two structures gives at least one to validation and keeps
    at least one for training. Isolated atoms and ``always_train`` config_types stay in
    training. Deterministic for a given ``seed``.

    Returns
    -------
    (train_indices, valid_indices), both sorted.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    groups, pinned = _group_by_config_type(frames, always_train)
    train, valid = list(pinned), []
    for ct, idx in groups.items():
        idx = np.array(idx)
        perm = rng.permutation(len(idx))
        n_valid = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            n_valid = min(max(n_valid, 1), len(idx) - 1)
        else:
            n_valid = 0
        valid += idx[perm[:n_valid]].tolist()
        train += idx[perm[n_valid:]].tolist()
    if not valid:
        raise DataError("the random split left no structure for validation; use a larger data set or fraction")
    return sorted(train), sorted(valid)


def kfold_split(
    frames: Sequence, k: int, seed: int, always_train: Sequence[str] = ALWAYS_TRAIN
) -> list[tuple[list[int], list[int]]]:
    """Stratified k-fold split: each config_type is dealt round-robin into ``k`` folds.

    Returns
    -------
    list of (train_indices, valid_indices), one per fold; every validable structure is in
    exactly one validation fold.
    """
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2, got {k}")
    rng = np.random.default_rng(seed)
    groups, pinned = _group_by_config_type(frames, always_train)
    fold_of: dict[int, int] = {}
    offset = 0
    for ct, idx in groups.items():
        perm = rng.permutation(idx)
        for j, i in enumerate(perm):
            fold_of[int(i)] = (j + offset) % k
        offset = (offset + len(perm)) % k
    n_validable = len(fold_of)
    if n_validable < k:
        raise DataError(f"k-fold with k={k} needs at least {k} structures to validate on, found {n_validable}")
    folds = []
    for f in range(k):
        valid = sorted(i for i, ff in fold_of.items() if ff == f)
        train = sorted(set(range(len(frames))) - set(valid))
        folds.append((train, valid))
    return folds


def config_type_counts(frames: Sequence) -> dict[str, int]:
    return dict(Counter(a.info.get(CT, "default") for a in frames))


def split_folds(frames: Sequence, scfg: dict) -> list[tuple[list[int], list[int]]]:
    """The (train, validation) indices of every fold of a ``random`` or ``kfold`` split (the
    ``split`` section), as the ``split`` rule makes them; [] for ``method: file``."""
    if scfg["method"] == "random":
        return [random_split(frames, scfg["fraction"], scfg["seed"], scfg["always_train"])]
    if scfg["method"] == "kfold":
        return kfold_split(frames, scfg["k"], scfg["seed"], scfg["always_train"])
    return []
