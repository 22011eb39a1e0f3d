"""The paper command's options and error handling (`python -m potune.paper`): argument checks,
missing data, the index of invocations, and searches run side by side through real Snakemake."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import ROOT

from potune.report import paper


def test_paper_rejects_bad_arguments(capsys, tmp_path):
    for argv, msg in (
        (["--searches", "0"], "--searches must be at least 1"),
        (["--cores", "0"], "--cores must be at least 1"),
        (["--elements", "Xx"], "invalid choice: 'Xx'"),
        (["--only", "no_such_table"], "invalid choice: 'no_such_table'"),
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
