"""End to end: trials whose fit crashes, runs out of memory or out of time, or whose
validation runs out of memory, are failed rows of the trial table, with the reason, and the
search goes on to its next iteration."""

from __future__ import annotations

import pytest
from wfrun import snakemake, tiny_config, trials

CASES = {
    # gap_fit aborts: "fit_data_from_xyz: too small energy_sigma"
    "crash": ({"fixed": {"sigma_energy": 1e-300}}, "too small energy_sigma"),
    # a job of 40 MB: beside the Python fit script (~40 MB) gap_fit (needs ~25 MB on this
    # data) gets the floor of a tenth of the job, 4 MB
    "memory": ({"resources": {"fit": {"mem_mb": 40}}}, "out of memory"),
    # runtime 0.005 min: the fit (made slower: l_max 8, 150 CUR sparse points) stops itself
    # after 0.15 s
    "time": (
        {
            "resources": {"fit": {"runtime": 0.005}},
            "fixed": {"l_max": 8, "n_sparse": 150, "sparse_method": "cur_points"},
        },
        "time limit of 0.15 s exceeded",
    ),
    # a validation job of 80 MB: quippy's prediction in the job's Python process (~100 MB)
    # is over its limit (76 MB) and stops itself (#17)
    "validate_memory": (
        {"resources": {"validate": {"mem_mb": 80}}},
        "(raise resources.validate.mem_mb)",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_failed_trials_are_recorded_and_search_goes_on(tmp_path, case):
    over, reason = CASES[case]
    space = {"cutoff": {"type": "real", "low": 3.5, "high": 5.0}, "n_max": {"type": "integer", "low": 2, "high": 4}}
    if case == "crash":
        fixed = {"zeta": 2, "n_sparse": 15, "sparse_method": "random", "l_max": 3, **over["fixed"]}
        over = {"fixed": fixed}
    cfg, run = tiny_config(tmp_path, space=space, optimizer={"batch_size": 1, "n_initial": 1}, **over)
    # the table only: with every trial failed there is no best potential to refit
    snakemake(cfg, "--cores", "2", f"{run}/trials.csv")
    t = trials(run)
    assert list(t["iteration"]) == [0, 1], "the search must go on after a failed iteration"
    assert (t["status"] == "failed").all()
    assert all(reason in r for r in t["reason"]), list(t["reason"])
    assert t["loss"].isna().all()
