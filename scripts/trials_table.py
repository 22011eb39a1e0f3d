"""Rule `trials_table`: the final trial table (written atomically) and why the search stopped."""

from potune.console import logged, say
from potune.io import write_yaml
from potune.trials import read_table, write_table

with logged(snakemake.log[0], "w"):
    write_table(snakemake.output.table, read_table(snakemake.input[0]))
    write_yaml(snakemake.output.stop, snakemake.params.stop)
    say(f"search stopped after {snakemake.params.stop['iterations']} iteration(s): {snakemake.params.stop['reason']}")
