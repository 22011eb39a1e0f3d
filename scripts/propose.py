"""Checkpoint `propose`: the next batch of trials, one file each."""

from potune.console import logged
from potune.steps.propose import propose_step

stage1 = getattr(snakemake.input, "stage1", None)  # strategy two_stage: stage 1's best.yaml
stage1 = stage1 if isinstance(stage1, str) else (stage1[0] if stage1 else None)
params = dict(snakemake.params.items())
if not hasattr(snakemake.input, "pending"):  # stage 1's loop proposes without lookahead (n_initial default)
    params["optimizer"] = {**params["optimizer"], "lookahead": 0}
with logged(snakemake.log[0], "w"):
    propose_step(
        params,
        int(snakemake.wildcards.iteration),
        snakemake.input.table[0] if snakemake.input.table else None,
        snakemake.output.proposals,
        stage1_best=stage1,
        pending_dirs=list(getattr(snakemake.input, "pending", []) or []),
    )
