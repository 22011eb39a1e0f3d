"""Rule `collect_descriptors`: append one stage-1 iteration to the stage-1 table."""

from pathlib import Path

from potune.console import logged
from potune.steps.propose import proposal_trials
from potune.steps.stage1 import collect_stage1

it = int(snakemake.wildcards.iteration)
iter_dir = Path(snakemake.output.table).parent
files = {t: str(iter_dir / t / snakemake.params.result) for t in proposal_trials(snakemake.input.proposals)}
with logged(snakemake.log[0], "w"):
    collect_stage1(
        snakemake.params.cfg,
        it,
        snakemake.input.previous[0] if snakemake.input.previous else None,
        snakemake.input.proposals,
        files,
        snakemake.output.table,
    )
