"""Rule `trials_table`: the final trial table (written atomically)."""
from potune.steps import logged
from potune.trials import read_table, write_table

with logged(snakemake.log[0], "w"):
    write_table(snakemake.output.table, read_table(snakemake.input[0]))
