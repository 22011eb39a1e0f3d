"""Rule `refit_comparison`: test errors of the refit as searched vs refit on energies + forces."""

from potune.console import logged
from potune.steps.stage1 import refit_comparison_step

with logged(snakemake.log[0], "w"):
    refit_comparison_step(
        snakemake.input.search_metrics,
        snakemake.input.forces_metrics,
        snakemake.input.search_fit,
        snakemake.input.forces_fit,
        snakemake.params.energy_only,
        snakemake.output.csv,
    )
