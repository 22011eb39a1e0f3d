"""Rule ``split``: the train/validation files of every fold, the full training set and the test set."""

from __future__ import annotations

import os
from pathlib import Path

from .. import data as D
from ..console import say
from ..io import write_yaml


def split(cfg: dict, out_dir: str | os.PathLike) -> dict:
    """Read and check the data, then write the train/validation files of every fold, the
    whole training set (for the final refit) and the test set, normalised.

    ``cfg`` holds the ``data`` and ``split`` sections and ``require_forces`` (False when the
    fitter trains on energies only).

    Returns the split summary (also written to ``out_dir/summary.yaml``).
    """
    out = Path(out_dir)
    dcfg, scfg = cfg["data"], cfg["split"]
    keys = dict(energy_key=dcfg["energy_key"], forces_key=dcfg["forces_key"], config_type_key=dcfg["config_type_key"])
    train = D.read_structures(dcfg["train"], require_forces=cfg.get("require_forces", True), **keys)
    D.check_dataset(train, dcfg["train"])
    folds: list[tuple[list, list]]
    if scfg["method"] in ("random", "kfold"):
        folds = [([train[i] for i in tr], [train[i] for i in va]) for tr, va in D.split_folds(train, scfg)]
    elif scfg["method"] == "file":
        valid = D.read_structures(dcfg["validation"], require_forces=False, **keys)
        D.check_species(train, valid, dcfg["validation"])
        folds = [(train, valid)]
    else:  # the schema prevents this
        raise ValueError(f"unknown split method {scfg['method']}")
    summary: dict = {"train_file": dcfg["train"], "method": scfg["method"], "folds": []}
    for f, (tr, va) in enumerate(folds):  # checked before any job too (data.check.check_split)
        D.check_species(tr, va, f"{dcfg['train']}: the validation set of fold {f}", "that fold's training set")
        D.write_structures(out / f"fold{f}" / "train.xyz", tr)
        D.write_structures(out / f"fold{f}" / "valid.xyz", va)
        summary["folds"].append(
            {
                "fold": f,
                "train_structures": len(tr),
                "train_atoms": sum(len(a) for a in tr),
                "valid_structures": len(va),
                "valid_atoms": sum(len(a) for a in va),
                "valid_config_types": D.config_type_counts(va),
            }
        )
    D.write_structures(out / "full_train.xyz", train)
    if dcfg.get("test"):
        test = D.read_structures(dcfg["test"], require_forces=False, **keys)
        D.check_species(train, test, dcfg["test"])
        D.write_structures(out / "test.xyz", test)
        summary["test_structures"] = len(test)
    summary["species"] = D.species(train)
    write_yaml(out / "summary.yaml", summary)
    f0 = summary["folds"][0]
    say(
        f"data: {len(train)} training structures; {len(folds)} fold(s), fold 0 trains on "
        f"{f0['train_structures']} and validates on {f0['valid_structures']} structures"
    )
    return summary
