"""Rule `proxy_train`: the training subset of stage 1's proxy fits."""

from potune.console import logged
from potune.steps.stage1 import proxy_train_step

with logged(snakemake.log[0], "w"):
    proxy_train_step(
        snakemake.input.train,
        snakemake.output.train,
        snakemake.params.max_structures,
        int(snakemake.params.seed),
        snakemake.params.always_train,
    )
