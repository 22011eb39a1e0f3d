# potune: hyperparameter optimisation of machine-learned interatomic potentials.
# Wiring only: the rules are in workflow/rules/, the science in the potune library
# (workflow/potune/), the rule entry points in scripts/.
#
#   snakemake --cores 2                          # default search (config/config.yaml)
#   snakemake --cores 8 --configfile my.yaml     # your own search
#   snakemake -n                                 # dry run
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/twostage_common.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/stage1.smk"
include: "workflow/rules/propose.smk"
include: "workflow/rules/descriptors.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/proxy.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/kernel.smk"


rule all:
    default_target: True
    input:
        final_targets(),
        extra_targets(),


# `snakemake results`: the numbers without the figures (what `python -m potune.paper` builds)
rule results:
    input:
        result_targets(),
        extra_targets(),
