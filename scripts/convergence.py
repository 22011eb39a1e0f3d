"""Rule `convergence`: loss per trial and best so far vs evaluation."""

from potune.console import logged
from potune.report.plots import convergence_plot
from potune.trials import read_table

with logged(snakemake.log[0], "w"):
    convergence_plot(
        read_table(snakemake.input.table), snakemake.output.png, snakemake.output.csv, title=snakemake.params.title
    )
