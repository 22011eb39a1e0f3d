"""Several published references (#17): ``reference`` takes one mapping or a list, each with
label, energy_rmse_mev, force_rmse and optional source/protocol notes; best/test_errors.csv
gets one row per reference with the ratio ours / reference, and summary.md the same."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from potune.config import load_yaml_file, resolve_config
from potune.errors import ConfigError
from potune.report.references import references

ROOT = Path(__file__).resolve().parents[1]
GAP = {"label": "GAP", "energy_rmse_mev": 4.18, "force_rmse": 0.12, "source": "Zuo 2020", "protocol": "test split"}
QSNAP = {"label": "qSNAP", "energy_rmse_mev": 6.28, "force_rmse": 0.29}
OURS = {"energy_rmse_mev": 8.36, "force_rmse": 0.24}


def tiny(tmp_path, reference) -> dict:
    c = load_yaml_file(ROOT / "tests" / "configs" / "tiny.yaml")
    c["results_dir"] = str(tmp_path / "results")
    for k in ("train", "test"):
        c["data"][k] = str(ROOT / c["data"][k])
    c["reference"] = reference
    return c


def test_one_mapping_still_works_and_a_list_is_taken(tmp_path):
    one = resolve_config(tiny(tmp_path, {"label": "published GAP", "energy_rmse_mev": 4.18}))
    assert references(one["reference"]) == [
        {"label": "published GAP", "energy_rmse_mev": 4.18, "force_rmse": None, "source": None, "protocol": None}
    ]
    nolabel = resolve_config(tiny(tmp_path, {"force_rmse": 0.1}))  # label from the defaults
    assert [r["label"] for r in references(nolabel["reference"])] == ["published"]
    two = resolve_config(tiny(tmp_path, [GAP, QSNAP, {"label": "no numbers"}]))
    refs = references(two["reference"])
    assert [r["label"] for r in refs] == ["GAP", "qSNAP"] and refs[0]["protocol"] == "test split"
    assert references(resolve_config(tiny(tmp_path, None))["reference"]) == []
    assert references(load_yaml_file(ROOT / "workflow" / "potune" / "defaults.yaml")["reference"]) == []


@pytest.mark.parametrize(
    "reference, message",
    [
        ([GAP, {"label": "x", "energy": 1.0}], "reference[1].energy: unknown key; known: label, energy_rmse_mev"),
        ({"label": "x", "force_rmse": -0.1}, "reference.force_rmse: expected a positive number or null, got -0.1"),
        ([GAP, "qSNAP 6.28"], "reference[1]: expected a mapping"),
        ([{"label": 3, "force_rmse": 0.1}], "reference[0].label: expected text, got 3"),
        ("GAP 4.18", "reference: expected a mapping or a list of mappings, got str"),
    ],
)
def test_bad_references_are_named(tmp_path, reference, message):
    with pytest.raises(ConfigError) as exc:
        resolve_config(tiny(tmp_path, reference))
    assert message in str(exc.value)


def test_test_errors_table_has_one_row_per_reference_with_ratios():
    from potune.steps.best import errors_with_references

    cols = ["n_structures", "n_atoms", "energy_mae_mev", "force_mae"]
    metrics = {**OURS, **dict.fromkeys(cols, 1.0)}
    metrics["per_config_type"] = {"dia": {**OURS, **dict.fromkeys(cols, 1.0)}}
    df = errors_with_references(metrics, [GAP, QSNAP])
    assert list(df["source"]) == ["potune", "potune", "reference", "reference"]
    assert list(df["config_type"]) == ["all", "dia", "all", "all"]
    refs = df[df["source"] == "reference"].set_index("label")
    assert refs.loc["GAP", "energy_ratio"] == pytest.approx(2.0)
    assert refs.loc["GAP", "force_ratio"] == pytest.approx(2.0)
    assert refs.loc["qSNAP", "energy_ratio"] == pytest.approx(8.36 / 6.28)
    assert refs.loc["GAP", "note"] == "Zuo 2020; test split" and refs.loc["qSNAP", "note"] == ""
    one = errors_with_references(metrics, {"label": "only E", "energy_rmse_mev": 4.18})
    assert len(one) == 3 and pd.isna(one.iloc[-1]["force_ratio"])
    assert len(errors_with_references(metrics, {"label": "published"})) == 2  # nothing to compare


def test_summary_lists_every_reference(tmp_path):
    from test_outputs_say import OK_REFIT, run_summary

    text = run_summary(tmp_path, {"reference": [GAP, QSNAP]}, refit=OK_REFIT, test={"status": "ok", **OURS})
    assert "| potune | 8.360 | 0.2400 | | |" in text
    assert "| GAP (Zuo 2020; test split) | 4.18 | 0.12 | 2.00 | 2.00 |" in text
    assert "| qSNAP | 6.28 | 0.29 | 1.33 | 0.83 |" in text
    alone = run_summary(
        tmp_path / "b", {"reference": {"label": "published"}}, refit=OK_REFIT, test={"status": "ok", **OURS}
    )
    assert "| potune | 8.360 | 0.2400 |\n" in alone and "ours/theirs" not in alone


def test_test_step_writes_the_reference_rows(tmp_path, monkeypatch):
    import sys
    import types

    from test_outcomes import FakeCalc

    from potune.fitters import FITTERS
    from potune.steps.best import test_step

    mod = types.ModuleType("potune_fake_fitter")
    mod.calculator = lambda model_dir: FakeCalc(Path(model_dir).name)
    monkeypatch.setitem(sys.modules, "potune_fake_fitter", mod)
    monkeypatch.setitem(FITTERS, "fake", "potune_fake_fitter")
    best = tmp_path / "best"
    (best / "ok").mkdir(parents=True)
    (best / "fit.json").write_text(json.dumps({"status": "ok", "reason": "", "wall_s": 1.0}))
    cfg = {"fitter": "fake", "loss": {"kind": "weighted", "alpha": 0.5}, "reference": [GAP, QSNAP]}
    out = [best / "test_errors.csv", best / "test_predictions.npz", best / "test_metrics.json"]
    from potune import data as D

    test_file = tmp_path / "test.xyz"
    D.write_structures(
        test_file,
        D.read_structures(ROOT / "tests" / "data" / "si_tiny_test.xyz", energy_key="energy", forces_key="forces"),
    )
    m = test_step(cfg, best / "ok", test_file, *out)
    df = pd.read_csv(out[0])
    refs = df[df["source"] == "reference"]
    assert list(refs["label"]) == ["GAP", "qSNAP"]
    assert refs["energy_ratio"].iloc[0] == pytest.approx(m["energy_rmse_mev"] / 4.18)


def test_paper_zuo_searches_carry_the_three_references():
    from potune.report.paper import ZUO_PUBLISHED, zuo_references

    refs = references(zuo_references("Si"))
    assert [(r["energy_rmse_mev"], r["force_rmse"]) for r in refs] == [(4.18, 0.12), (6.28, 0.29), (3.31, 0.11)]
    assert all(r["source"] and r["protocol"] for r in refs)
    assert len(ZUO_PUBLISHED) == 4 and all(len(references(zuo_references(e))) == 3 for e in ZUO_PUBLISHED)
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert [r["label"].split(" (")[0] for r in references(cfg["reference"])] == [
        "Zuo et al. 2020 GAP",
        "Zuo et al. 2020 qSNAP",
        "XPOT-optimised qSNAP",
    ]
