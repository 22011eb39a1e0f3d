"""The paper command's options and error handling (`python -m potune.paper`): argument checks,
missing data, the index of invocations, and searches run side by side through real Snakemake."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from conftest import ROOT

from potune.report import paper


def test_paper_rejects_bad_arguments(capsys, tmp_path):
    for argv, msg in (
        (["--searches", "0"], "--searches must be at least 1"),
        (["--cores", "0"], "--cores must be at least 1"),
        (["--elements", "Xx"], "invalid choice: 'Xx'"),
        (["--only", "no_such_table"], "invalid choice: 'no_such_table'"),
        (["--protocols", "test"], "invalid choice: 'test'"),
        (["--methods", "both"], "invalid choice: 'both'"),
    ):
        with pytest.raises(SystemExit) as exc:
            paper.main([*argv, "--out", str(tmp_path / "out")])
        assert exc.value.code == 2
        assert msg in capsys.readouterr().err


def test_paper_missing_zuo_data_names_the_file_and_the_option(capsys, tmp_path):
    out = tmp_path / "out"
    rc = paper.main(
        ["--only", "xpot_table2", "--elements", "Li", "--shared", str(tmp_path / "absent"), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "experiment xpot_table2" in err and "Li_train.xyz.gz" in err and "--shared" in err
    assert not (out / "runs").exists()  # nothing started
    readme = (out / "README.md").read_text()
    assert "--elements Li" in readme and "failed: xpot_table2" in readme


def test_write_index_keeps_every_invocation(tmp_path):
    (tmp_path / "ppso_table2.csv").write_text("a\n1\n")
    paper.write_index(tmp_path, "python -m potune.paper --only ppso_table2", 12.3, [tmp_path / "ppso_table2.csv"])
    (tmp_path / "xpot_fig6.png").write_bytes(b"")
    readme = paper.write_index(tmp_path, "python -m potune.paper --only xpot_fig6", 40.0, [tmp_path / "xpot_fig6.png"])
    text = readme.read_text()
    first, second = text.index("--only ppso_table2"), text.index("--only xpot_fig6")
    assert first < second  # oldest first, both kept
    assert "in 12 s: ppso_table2.csv" in text and "in 40 s: xpot_fig6.png" in text
    assert "- ppso_table2.csv\n" in text and "- xpot_fig6.png\n" in text and "- README.md" not in text


def test_wall_note_says_how_wall_times_were_measured(tmp_path):
    ctx = paper.Context(out=tmp_path, cores=4, quick=True, shared=None)
    summed = paper.wall_note(ctx)
    assert len(summed) == 1 and "summed over the invocations" in summed[0]
    assert "not the search's own figures (--figures)" in summed[0]
    ctx.figures = True
    assert "own figures included" in paper.wall_note(ctx)[0]
    ctx.searches_at_once = 2
    assert paper.wall_note(ctx)[1:] == [
        "up to 2 searches ran at the same time, each with 2 of the 4 cores: wall times overlap"
    ]
    ctx.snakemake_args = ["--profile", "slurm"]
    assert paper.wall_note(ctx)[1:] == [
        "up to 2 searches ran at the same time: wall times overlap",
        "searches ran with snakemake --profile slurm: the cores column is the driver's --cores, not the cores the "
        "jobs ran on",
    ]


@pytest.mark.slow
def test_searches_side_by_side_and_a_failing_one_does_not_stop_the_other(tmp_path, tiny_cfg):
    """Two real searches at once in the same working directory (two snakemake processes);
    the one with bad bounds fails at parse time, the other finishes, and the error names the
    failed one. A second call reuses the finished search."""
    ctx = paper.Context(
        out=tmp_path, cores=2, quick=True, shared=None, searches_at_once=2, snakemake_args=["--keep-going"]
    )
    good = {**copy.deepcopy(tiny_cfg), "run_name": "side-good", "stop": {"max_iterations": 1}}
    for part in ("train", "test"):
        good["data"][part] = str(ROOT / good["data"][part])
    bad = copy.deepcopy(good)
    bad["run_name"] = "side-bad"
    bad["space"]["cutoff"] = {"type": "real", "low": 5.0, "high": 3.5}
    with pytest.raises(RuntimeError) as exc:
        paper.run_searches(ctx, [good, bad])
    msg = str(exc.value)
    assert "1 of 2 searches failed" in msg and "side-bad" in msg and "side-good:" not in msg
    assert "cutoff" in msg  # the config error, from the log's tail
    assert (tmp_path / "runs" / "side-good" / "best" / "test_metrics.json").exists()
    assert "side-good" in ctx.searches and "side-bad" not in ctx.searches
    # the quiet progress of potune.run, one line per trial, named by search
    trial_lines = [line for line in ctx.log if line.startswith("[potune paper] side-good: trial ")]
    assert len(trial_lines) == 2 and "trials 2/2" in trial_lines[-1], ctx.log
    ((run_dir, wall),) = paper.run_searches(ctx, [good])  # reused, not run again
    assert run_dir == tmp_path / "runs" / "side-good" and wall > 0
    assert any("side-good: reusing" in line for line in ctx.log)
    assert any("1 core(s)" in line for line in ctx.log)  # 2 cores shared by 2 searches
    # wall times are recorded per invocation that ran the search, failed ones included
    walls = json.loads((tmp_path / "logs" / "side-good.walls.json").read_text())
    assert [(w["cores"], w["exit"], w["snakemake_args"]) for w in walls] == [(1, 0, "--keep-going")]
    assert json.loads((tmp_path / "logs" / "side-bad.walls.json").read_text())[0]["exit"] != 0
    b = paper.budget(ctx, run_dir)
    assert b == {"wall time (s)": walls[0]["wall_s"], "cores": "1", "invocations": 1}
    # a later invocation of the finished search (a new command: nothing cached) adds nothing
    ctx2 = paper.Context(out=tmp_path, cores=2, quick=True, shared=None)
    ((_, total),) = paper.run_searches(ctx2, [good])
    assert total == walls[0]["wall_s"] and paper.budget(ctx2, run_dir)["invocations"] == 1


def _fake_searches(monkeypatch):
    """Replace the searches of an experiment by fixed results: the table assembly without fits."""
    ran = []

    def run_searches(ctx, cfgs):
        ran.extend(c["run_name"] for c in cfgs)
        return [(ctx.out / "runs" / c["run_name"], 1.0) for c in cfgs]

    def run_result(run_dir):
        i = ran.index(run_dir.name)
        return {"evaluations": 4, "failed": 0, "test_energy_rmse_mev": 5.0 + i, "test_force_rmse": 0.2, "best": {}}

    monkeypatch.setattr(paper, "run_searches", run_searches)
    monkeypatch.setattr(paper, "run_result", run_result)
    return ran


def test_xpot_table2_quick_runs_both_protocols_as_xpot_did(tmp_path):
    """Quick: Si only, GAP (held-out) and one qSNAP search per protocol, by default potune's
    nested method; the two qSNAP searches differ only in their validation data: XPOT's protocol
    validates on the published test split."""
    from potune.config import resolve_config

    ctx = paper.Context(out=tmp_path, cores=2, quick=True, shared=None)
    searches = paper.xpot_table2_searches(ctx)
    assert [(s.element, s.kind, s.protocol, s.method) for s in searches] == [
        ("Si", "GAP", "heldout", None),
        ("Si", "qSNAP", "xpot", "nested"),
        ("Si", "qSNAP", "heldout", "nested"),
    ]
    gap, xp, ho = (s.cfg for s in searches)
    assert gap["run_name"] == "paper-xpot-gap-Si-alpha0.5-quick"  # shared with xpot_fig6
    assert (xp["run_name"], ho["run_name"]) == (
        "paper-xpot-qsnap-Si-xpot-nested-quick",
        "paper-xpot-qsnap-Si-heldout-nested-quick",
    )
    test = str(ROOT / "data" / "zuo2020" / "Si_test.xyz.gz")
    assert xp["split"] == {"method": "file"} and xp["data"]["validation"] == xp["data"]["test"] == test
    assert ho["split"]["method"] == "random" and "validation" not in ho["data"]
    same = {k: v for k, v in xp.items() if k not in ("run_name", "split", "data")}
    assert same == {k: v for k, v in ho.items() if k not in ("run_name", "split", "data")}
    assert xp["fixed"] == {"twojmax": 4, "quadratic": True, "solver": "svd", "rmin0": 0.0}
    assert xp["snap"] == {"nested": True, "inner": {"evaluations": 5}}  # tiny: 5 solves per trial
    assert xp["loss"] == {"kind": "weighted", "alpha": 0.75}
    opt = xp["optimizer"]
    # 2 Hammersley points, then a GP told their losses (no lookahead): the protocols' searches part
    assert (opt["initial_design"], opt["n_initial"], opt["default_first"], opt["lookahead"]) == (
        "hammersly",
        2,
        False,
        0,
    )
    assert opt["batch_size"] * xp["stop"]["max_iterations"] == 4  # tiny budget
    for s in searches:  # each is a valid configuration, with the three published references (#17)
        resolved = resolve_config({**s.cfg, "results_dir": str(tmp_path / "runs")}, check_files=False)
        if s.kind == "qSNAP":
            assert resolved["snap"]["nested"] is True
        labels = [r["label"] for r in s.cfg["reference"]]
        assert labels == ["Zuo 2020 GAP", "Zuo 2020 qSNAP", "XPOT-optimised qSNAP"]
        assert s.cfg["reference"] == paper.zuo_references("Si")
    # both methods: per protocol the nested and XPOT's joint search, under names that coexist;
    # the joint ones keep the names they had before the nested ones (so they resume)
    ctx.methods = ["joint", "nested"]
    both = paper.xpot_table2_searches(ctx)
    assert [(s.protocol, s.method) for s in both[1:]] == [
        ("xpot", "nested"),
        ("xpot", "joint"),
        ("heldout", "nested"),
        ("heldout", "joint"),
    ]
    assert [s.cfg["run_name"] for s in both[1:]] == [
        "paper-xpot-qsnap-Si-xpot-nested-quick",
        "paper-xpot-qsnap-Si-xpot-quick",
        "paper-xpot-qsnap-Si-heldout-nested-quick",
        "paper-xpot-qsnap-Si-heldout-quick",
    ]
    joint = both[2].cfg
    assert joint["snap"] == {"nested": False} and joint["space"] == xp["space"]
    assert joint["optimizer"] == opt and joint["stop"] == xp["stop"]  # quick: the same tiny outer budget


def test_xpot_table2_full_budget_is_xpots(tmp_path):
    """Full budget, joint method: twojmax as XPOT's inputs, 150 evaluations of which 32 Hammersley
    points, rmin0 fixed 0 and XPOT's bounds with one weight pair per config_type."""
    ctx = paper.Context(out=tmp_path, cores=2, quick=False, shared=None, elements=["Si"], methods=["joint"])
    (_, xp, ho) = paper.xpot_table2_searches(ctx)
    for s in (xp, ho):
        cfg = s.cfg
        assert s.method == "joint" and cfg["run_name"] == f"paper-xpot-qsnap-Si-{s.protocol}"
        assert cfg["fixed"]["twojmax"] == 8 and cfg["fixed"]["rmin0"] == 0.0
        assert cfg["optimizer"]["batch_size"] * cfg["stop"]["max_iterations"] == 150
        assert cfg["optimizer"]["n_initial"] == 32 and cfg["optimizer"]["initial_design"] == "hammersly"
        assert cfg["optimizer"]["lookahead"] == 1 and cfg["snap"] == {"nested": False}
        sp = cfg["space"]
        assert "rmin0" not in sp and (sp["rcutfac"]["low"], sp["rcutfac"]["high"]) == (3.0, 6.0)
        assert (sp["rfac0"]["low"], sp["rfac0"]["high"]) == (0.5, 1.5)
        for ct in ("AIMD-NVT", "Elastic", "Surface", "Vacancy"):
            assert (sp[f"eweight[{ct}]"]["low"], sp[f"eweight[{ct}]"]["high"]) == (100, 15000)
            assert (sp[f"fweight[{ct}]"]["low"], sp[f"fweight[{ct}]"]["high"]) == (0.1, 500)
    assert paper.XPOT_TWOJMAX == {"Si": 8, "Li": 6, "Cu": 6, "Ni": 6}
    with pytest.raises(ValueError, match="unknown protocol"):
        paper.qsnap_zuo_config(xp.cfg["data"]["train"], xp.cfg["data"]["test"], "x", 1, 1, protocol="test")
    with pytest.raises(ValueError, match="unknown method"):
        paper.qsnap_budget(ctx, "both")


def test_xpot_table2_full_budget_nested(tmp_path):
    """Full budget, nested method (the default): 40 outer trials from 8 Hammersley points with
    the optimiser's default lookahead, 20 inner solves for Si (60 for Li), XPOT's space."""
    ctx = paper.Context(out=tmp_path, cores=2, quick=False, shared=None, elements=["Si"])
    (_, xp, ho) = paper.xpot_table2_searches(ctx)
    joint = paper.Context(out=tmp_path, cores=2, quick=False, shared=None, elements=["Si"], methods=["joint"])
    (_, jxp, _) = paper.xpot_table2_searches(joint)
    for s in (xp, ho):
        cfg = s.cfg
        assert s.method == "nested" and cfg["run_name"] == f"paper-xpot-qsnap-Si-{s.protocol}-nested"
        assert cfg["snap"] == {"nested": True, "inner": {"evaluations": 20}}
        assert cfg["optimizer"]["batch_size"] * cfg["stop"]["max_iterations"] == 40
        assert cfg["optimizer"]["n_initial"] == 8 and "lookahead" not in cfg["optimizer"]
        assert cfg["space"] == jxp.cfg["space"] and cfg["fixed"] == jxp.cfg["fixed"]
    assert paper.XPOT_QSNAP_NESTED_BUDGET["inner"] == {"Si": 20, "Li": 60, "Cu": 20, "Ni": 20}


def test_xpot_table2_protocols_option_selects_rows(tmp_path):
    ctx = paper.Context(out=tmp_path, cores=2, quick=True, shared=None, protocols=["xpot"])
    assert [(s.kind, s.protocol) for s in paper.xpot_table2_searches(ctx)] == [("qSNAP", "xpot")]
    ctx.protocols = ["heldout"]  # the GAP rows are held-out searches
    assert [(s.kind, s.protocol) for s in paper.xpot_table2_searches(ctx)] == [("GAP", "heldout"), ("qSNAP", "heldout")]


def test_xpot_table2_table_labels_each_protocol(monkeypatch, tmp_path):
    """The table (assembled from fixed results, no search) says which protocol and method each
    number used, beside the published qSNAP and XPOT's numbers; --protocols and --methods reach
    the experiment."""
    ran = _fake_searches(monkeypatch)
    out = tmp_path / "out"
    assert paper.main(["--quick", "--only", "xpot_table2", "--out", str(out)]) == 0
    t = pd.read_csv(out / "xpot_table2.csv")
    assert list(t["potential"]) == ["GAP (potune-optimised)"] + ["qSNAP (potune-optimised)"] * 2
    assert list(t["protocol"]) == [paper.PROTOCOLS["heldout"], paper.PROTOCOLS["xpot"], paper.PROTOCOLS["heldout"]]
    assert list(t["method"]) == ["-", "nested (potune)", "nested (potune)"]
    assert list(t["inner solves"].fillna(0)) == [0, 5, 5]
    assert list(t["E RMSE (meV/atom)"]) == [5.0, 6.0, 7.0] and list(t["run"]) == ran
    assert list(t["published E"]) == [4.18, 6.28, 6.28] and list(t["published F"]) == [0.12, 0.29, 0.29]
    assert list(t["XPOT-optimised E"].fillna(0)) == [0, 3.31, 3.31]
    md = (out / "xpot_table2.md").read_text()
    assert "validation = the published test split" in md and "what users should do" in md
    assert "tuned on the test split" in md
    assert "snap.nested: true" in md and "snap.nested: false" not in md and "quick variant" in md
    assert "--methods joint" in md  # says how to get XPOT's method
    ran.clear()
    assert paper.main(["--quick", "--only", "xpot_table2", "--protocols", "xpot", "--out", str(out)]) == 0
    assert ran == ["paper-xpot-qsnap-Si-xpot-nested-quick"]
    md = (out / "xpot_table2.md").read_text()
    assert "validation = the published test split" in md and "what users should do" not in md
    ran.clear()
    assert paper.main(["--quick", "--only", "xpot_table2", "--methods", "joint", "--out", str(out)]) == 0
    assert ran == [
        "paper-xpot-gap-Si-alpha0.5-quick",
        "paper-xpot-qsnap-Si-xpot-quick",
        "paper-xpot-qsnap-Si-heldout-quick",
    ]
    t = pd.read_csv(out / "xpot_table2.csv")
    assert list(t["method"]) == ["-", "joint (XPOT's method)", "joint (XPOT's method)"]
    assert t["inner solves"].isna().all()
    md = (out / "xpot_table2.md").read_text()
    assert "snap.nested: false" in md and "snap.nested: true" not in md and "--methods nested" in md
