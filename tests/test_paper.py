"""The papers' tables, quick variant (`python -m potune.paper --quick`): real searches with
small budgets; checks the tables carry our numbers beside the published ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from potune.config import resolve_config
from potune.report.paper import (
    METHODS,
    PPSO_TABLE3_DESCRIPTOR_SPACE,
    PPSO_TABLE3_GAP_SPACE,
    PROTOCOLS,
    Context,
    ppso_dimer_config,
)

#: PPSO Table 3 (Kondati Natarajan & Caro), written out: name -> (low, high). rcs 4.0-5.0 is the
#: cutoff transition width, so rcut_soft = 5 - rcs = 0.0-1.0 A (the Table 2 reading).
PAPER_DESCRIPTOR_BOUNDS = {
    "rcut_soft": (0.0, 1.0),
    "atom_sigma_r": (0.1, 2.0),
    "atom_sigma_t": (0.1, 2.0),
    "atom_sigma_r_scaling": (0.0, 2.0),
    "atom_sigma_t_scaling": (0.0, 2.0),
    "amplitude_scaling": (0.0, 2.0),
    "central_weight": (0.0, 2.0),
    "radial_enhancement": (0, 2),
    "zeta": (2, 10),
}
PAPER_GAP_BOUNDS = {
    "delta": (0.1, 5.0),
    "sigma_energy": (0.001, 0.1),
    "sigma_force": (0.001, 0.1),
    "n_sparse": (10, 40),
}


def _bounds(space: dict) -> dict:
    return {k: (v["low"], v["high"]) for k, v in space.items()}


@pytest.mark.parametrize("n", [4, 6])
@pytest.mark.parametrize("strategy", ["joint", "two_stage"])
def test_ppso_dimer_config_is_the_papers_protocol(tmp_path, strategy, n):
    cfg = ppso_dimer_config(Context(out=tmp_path, cores=2, quick=False, shared=None), strategy, n)
    assert cfg["fixed"]["rcut_hard"] == 5.0 and cfg["fixed"]["n_max"] == cfg["fixed"]["l_max"] == n
    assert cfg["loss"] == {"kind": "gamma"} and not cfg["gap"].get("energy_only")
    opt = cfg["optimizer"]
    assert opt["kind"] == "pso" and opt["lookahead"] == 0 and opt["pso"]["c2"] == 2 * opt["pso"]["c1"]
    if strategy == "joint":
        assert _bounds(cfg["space"]) == {**PAPER_DESCRIPTOR_BOUNDS, **PAPER_GAP_BOUNDS}
        assert opt["batch_size"] == 16 and cfg["stop"]["max_iterations"] == 20
        assert "stage1" not in cfg or not cfg["stage1"]
    else:
        assert _bounds(cfg["stage1"]["space"]) == PAPER_DESCRIPTOR_BOUNDS
        assert _bounds(cfg["space"]) == PAPER_GAP_BOUNDS
        assert cfg["stage1"]["optimizer"] == {"kind": "pso", "batch_size": 16}
        assert cfg["stage1"]["stop"]["max_iterations"] == 20
        assert opt["batch_size"] == 20 and cfg["stop"]["max_iterations"] == 10
    assert all(cfg["space"][k].get("prior") == "log-uniform" for k in ("delta", "sigma_energy", "sigma_force"))
    resolved = resolve_config({**cfg, "results_dir": str(tmp_path)}, check_files=False)  # schema and meaning
    assert resolved["optimizer"]["lookahead"] == 0


def test_ppso_joint_bayes_is_strategy_1_with_potunes_optimiser(tmp_path):
    """The comparison row of ppso_table3: the paper's bounds, loss and budget, the default search."""
    ctx = Context(out=tmp_path, cores=2, quick=False, shared=None)
    pso, bo = ppso_dimer_config(ctx, "joint", 4), ppso_dimer_config(ctx, "joint_bayes", 4)
    assert bo["space"] == pso["space"] and bo["loss"] == pso["loss"] and bo["fixed"] == pso["fixed"]
    # on the raw loss (the default until 2026-12-03), beside the same search on log(loss)
    assert bo["stop"] == pso["stop"]
    assert bo["optimizer"] == {"kind": "bayes", "seed": 0, "batch_size": 16, "log_loss": False}
    assert bo["run_name"] == "paper-ppso-joint_bayes-n4"
    resolved = resolve_config({**bo, "results_dir": str(tmp_path)}, check_files=False)
    assert resolved["optimizer"]["default_first"] and resolved["optimizer"]["lookahead"] is None  # default: 1
    log = ppso_dimer_config(ctx, "joint_bayes_log", 4)
    assert log["optimizer"] == {**bo["optimizer"], "log_loss": True} and log["space"] == bo["space"]


def test_ppso_dimer_config_quick_is_small(tmp_path):
    ctx = Context(out=tmp_path, cores=2, quick=True, shared=None)
    joint, two = ppso_dimer_config(ctx, "joint", 4), ppso_dimer_config(ctx, "two_stage", 4)
    assert joint["run_name"].endswith("-quick") and two["run_name"].endswith("-quick")
    assert joint["optimizer"]["batch_size"] == two["optimizer"]["batch_size"] == 4
    assert two["stage1"]["optimizer"]["batch_size"] == 4
    assert (
        joint["stop"]["max_iterations"] == two["stop"]["max_iterations"] == two["stage1"]["stop"]["max_iterations"] == 2
    )
    assert _bounds(joint["space"]) == {**PAPER_DESCRIPTOR_BOUNDS, **PAPER_GAP_BOUNDS}  # same bounds, smaller budget


def test_ppso_examples_carry_the_papers_protocol():
    """config/examples/ppso-dimer-*.yaml are the paper's protocol too (what ppso_dimer_config sets)."""
    joint = yaml.safe_load((ROOT / "config" / "examples" / "ppso-dimer-joint.yaml").read_text())
    two = yaml.safe_load((ROOT / "config" / "examples" / "ppso-dimer-two-stage.yaml").read_text())
    assert joint["space"] == {**PPSO_TABLE3_DESCRIPTOR_SPACE, **PPSO_TABLE3_GAP_SPACE}
    assert two["stage1"]["space"] == PPSO_TABLE3_DESCRIPTOR_SPACE and two["space"] == PPSO_TABLE3_GAP_SPACE
    assert joint["optimizer"]["batch_size"] == 16 and two["optimizer"]["batch_size"] == 20
    assert two["stage1"]["optimizer"] == {"kind": "pso", "batch_size": 16}
    for cfg in (joint, two):
        assert cfg["fixed"]["rcut_hard"] == 5.0 and cfg["loss"] == {"kind": "gamma"}
        assert cfg["optimizer"]["lookahead"] == 0 and cfg["optimizer"]["pso"]["c2"] == 2 * cfg["optimizer"]["pso"]["c1"]
        assert cfg["optimizer"]["default_first"] is False  # a random swarm, as the paper


@pytest.mark.slow
def test_paper_quick(tmp_path):
    out = tmp_path / "paper"
    proc = subprocess.run(
        [sys.executable, "-m", "potune.paper", "--cores", "2", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    t2 = pd.read_csv(out / "xpot_table2.csv")
    assert list(t2["element"]) == ["Si", "Si", "Si"]
    assert list(t2["potential"]) == ["GAP (potune-optimised)"] + ["qSNAP (potune-optimised)"] * 2
    # qSNAP with both protocols: XPOT's (validated on the test split) and held-out, by default
    # with potune's nested method
    assert list(t2["protocol"]) == [PROTOCOLS["heldout"], PROTOCOLS["xpot"], PROTOCOLS["heldout"]]
    assert list(t2["method"]) == ["-", METHODS["nested"], METHODS["nested"]]
    for run in t2["run"].iloc[1:]:  # each outer trial ran its 5 inner solves over the weights
        inner = sorted((out / "runs" / run).glob("iter*/**/model/inner.csv"))
        assert len(inner) == 4 and all(len(pd.read_csv(f)) == 5 for f in inner), run
    # the protocol switch: the first trial (the same Hammersley point and inner Sobol solves in
    # both) has another validation loss; the best may coincide at this budget (it did once)
    first = [pd.read_csv(out / "runs" / run / "trials.csv").iloc[0] for run in t2["run"].iloc[1:]]
    assert first[0]["rcutfac"] == first[1]["rcutfac"] and first[0]["loss"] != pytest.approx(first[1]["loss"])
    assert list(t2["published E"]) == [4.18, 6.28, 6.28] and list(t2["published F"]) == [0.12, 0.29, 0.29]
    assert list(t2["XPOT-optimised E"].iloc[1:]) == [3.31, 3.31]
    assert (t2["E RMSE (meV/atom)"] > 0).all() and (t2["evaluations"] == 4).all()
    t2p = pd.read_csv(out / "ppso_table2.csv")
    assert len(t2p) == 4 and list(t2p["zeta"]) == [1, 10, 1, 10] and (t2p["status"] == "ok").all()
    assert t2p["kernel mean"].between(0, 1).all() and (t2p["kernel std"] > 0).all()
    # the paper's kernel mean and std of both sets at both zeta, to its rounding (set 1 std: 0.0088 vs 0.008)
    for col in ("mean", "std"):
        assert list(t2p[f"kernel {col}"]) == pytest.approx(list(t2p[f"paper kernel {col}"]), rel=0.11)
    f6 = pd.read_csv(out / "xpot_fig6.csv")
    assert list(f6["alpha"]) == [0.1, 0.5] and (f6["optimised cutoff (Å)"].between(3.5, 6.0)).all()
    # the alpha = 0.5 search is Table II's GAP Si search, run once
    assert f6["E RMSE (meV/atom)"].iloc[1] == t2["E RMSE (meV/atom)"].iloc[0]
    assert "reusing the run made earlier" in proc.stdout
    assert sorted(p.name for p in (out / "runs").iterdir() if "xpot-gap" in p.name) == [
        "paper-xpot-gap-Si-alpha0.1-quick",
        "paper-xpot-gap-Si-alpha0.5-quick",
    ]
    t3 = pd.read_csv(out / "ppso_table3.csv")
    assert len(t3) == 2 and set(t3["n_max = l_max"]) == {4}  # quick: n = 4 only
    assert list(t3["run"]) == ["S4-1", "S4-2"]
    assert t3["kernel mean"].between(0, 1).all() and (t3["kernel std"] > 0).all()
    assert (t3["Γ_E (meV/atom)"] > 0).all() and (t3["Γ_F (meV/Å)"] > 0).all()
    assert list(t3["GAP fits"]) == [8, 8]  # quick: 4 particles x 2 iterations
    assert list(t3["kernel evaluations (stage 1)"]) == [0, 8]
    assert list(t3["PPSO Γ_F (meV/Å)"]) == ["~15", "~15"]
    # each search built its numbers (rule results), not its own figures (drawn with --figures)
    gap_run = out / "runs" / "paper-xpot-gap-Si-alpha0.5-quick"
    assert (gap_run / "summary.md").exists() and (gap_run / "best" / "potential").exists()
    assert (gap_run / "best" / "test_errors.csv").exists() and (gap_run / "figures" / "kernel_stats.json").exists()
    assert not (gap_run / "convergence.png").exists() and not (gap_run / "figures" / "landscape.png").exists()
    assert not (gap_run / "figures" / "parity.png").exists()
    # searches without a test set (the dimers) record their wall time too
    assert (t3["wall time (s)"] > 0).all() and (t2p["wall time (s)"] > 0).all()
    for name in (
        "xpot_table2.md",
        "xpot_fig6.png",
        "ppso_table2.md",
        "ppso_table3.md",
        "ppso_kernel_hist.png",
        "README.md",
    ):
        assert (out / name).exists(), name
    assert "published" in (out / "xpot_table2.md").read_text()
    # XPOT's joint method still runs (one tiny search, beside the nested ones in the same --out)
    proc = subprocess.run(
        [sys.executable, "-m", "potune.paper", "--cores", "2", "--quick", "--out", str(out)]
        + ["--only", "xpot_table2", "--methods", "joint", "--protocols", "xpot"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    joint = pd.read_csv(out / "xpot_table2.csv")
    assert list(joint["method"]) == [METHODS["joint"]] and list(joint["protocol"]) == [PROTOCOLS["xpot"]]
    assert list(joint["evaluations"]) == [4] and joint["E RMSE (meV/atom)"].iloc[0] > 0
    assert not list((out / "runs" / joint["run"].iloc[0]).glob("iter*/**/model/inner.csv"))  # no inner search
    assert {"paper-xpot-qsnap-Si-xpot-quick", "paper-xpot-qsnap-Si-xpot-nested-quick"} <= {
        p.name for p in (out / "runs").iterdir()
    }


#: config/examples/qsnap-*-nested.yaml: (file, element, protocol); the measured nested searches
NESTED_EXAMPLES = [
    ("qsnap-li-xpot-nested.yaml", "Li", "xpot"),
    ("qsnap-cu-xpot-nested.yaml", "Cu", "xpot"),
    ("qsnap-ni-xpot-nested.yaml", "Ni", "xpot"),
    ("qsnap-si-xpot-nested.yaml", "Si", "xpot"),
    ("qsnap-li-heldout-nested.yaml", "Li", "heldout"),
    ("qsnap-cu-heldout-nested.yaml", "Cu", "heldout"),
    ("qsnap-ni-heldout-nested.yaml", "Ni", "heldout"),
    ("qsnap-si-heldout-nested.yaml", "Si", "heldout"),
]
SHARED = ROOT.parent / "shared" / "data"


@pytest.mark.parametrize(("name", "element", "protocol"), NESTED_EXAMPLES)
def test_nested_examples_are_the_papers_nested_search(tmp_path, name, element, protocol):
    """Each example config/examples/qsnap-*-nested.yaml (what was measured in the README) is the
    nested search xpot_table2 runs for that element and protocol (``--methods nested``): the same
    space (in the same order: the optimisers' dimensions), fixed values, snap settings (inner
    solves), optimiser, loss, split and stop; only paths, run name and resources may differ."""
    from potune.fitters.snap.nested import inner_config, outer_space
    from potune.report import paper

    if not (SHARED / "zuo2020" / f"{element}_train.xyz.gz").exists() and element != "Si":
        pytest.skip(f"../shared/data/zuo2020/{element}_train.xyz.gz not present")
    ctx = Context(out=tmp_path, cores=2, quick=False, shared=SHARED, elements=[element], protocols=[protocol])
    (search,) = [s for s in paper.xpot_table2_searches(ctx) if s.kind == "qSNAP"]
    assert search.method == "nested" and search.cfg["run_name"] == f"paper-xpot-qsnap-{element}-{protocol}-nested"
    ours = search.cfg
    example = yaml.safe_load((ROOT / "config" / "examples" / name).read_text())
    # the data: the same files (the example's paths are ../shared/data/zuo2020/...), test as validation for xpot
    assert {k: Path(v).name for k, v in example["data"].items()} == {k: Path(v).name for k, v in ours["data"].items()}
    resolved = [resolve_config({**c, "results_dir": str(tmp_path)}, check_files=False) for c in (example, ours)]
    for key in ("space", "fixed", "snap", "optimizer", "loss", "split", "stop"):
        assert resolved[0][key] == resolved[1][key], key
    # the same order of the outer and of the inner dimensions (dict equality ignores order)
    for c in resolved:
        assert c["snap"]["nested"] is True
    assert list(outer_space(resolved[0]["space"], True)) == list(outer_space(resolved[1]["space"], True))
    assert list(inner_config(resolved[0])["space"]) == list(inner_config(resolved[1])["space"])
    assert resolved[1]["snap"]["inner"]["evaluations"] == paper.XPOT_QSNAP_NESTED_BUDGET["inner"][element]
    assert resolved[1]["optimizer"]["batch_size"] * resolved[1]["stop"]["max_iterations"] == 40
