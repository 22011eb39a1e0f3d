"""Rule `collect`: append one iteration's trials to the trial table."""

from pathlib import Path

from potune.console import logged
from potune.search.loop import trial_budget
from potune.steps.collect import collect_step
from potune.steps.propose import proposal_trials

it = int(snakemake.wildcards.iteration)
iter_dir = Path(snakemake.output.table).parent
trial_dirs = {
    t: [str(iter_dir / t / f"fold{f}") for f in range(snakemake.params.n_folds)]
    for t in proposal_trials(snakemake.input.proposals)
}
with logged(snakemake.log[0], "w"):
    collect_step(
        snakemake.params.names,
        it,
        snakemake.input.previous[0] if snakemake.input.previous else None,
        snakemake.input.proposals,
        trial_dirs,
        snakemake.output.table,
        budget=trial_budget(snakemake.config),
    )
