# nmmval: sweep a spiking network over <p, lambda, seed>, drive the registered
# neural mass models with its input, compare, gather a cube, draw figures.
#
#   snakemake                                     quick sweep to figures
#   snakemake --configfile config/paper.yaml      the paper's sweep
#   snakemake cube | figures                      one stage's target
#   snakemake cell --config cell='{p: 0.3, lam: 0.8, seed: 1}'   one more cell
#   snakemake --forcerun results/quick/cells/p~0.700/lam~0.800/seed~0001/network.nc
#                                                 rerun that cell and all after it
#   snakemake --report report.html                the figures in one browsable file
#
# Snakemake reads profiles/default (cores: all) by itself: no -c needed.


# The quick config, unless config files are given on the command line: then a key
# they leave out takes the schema's default (the paper's network), not the quick
# value. Next to this Snakefile, so that --directory (results elsewhere) finds it.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/masses.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/gather.smk"
include: "workflow/rules/figures.smk"


localrules:
    all,
    cube,
    cell,
    gather,
    figures,


onstart:
    write_resolved_config()


rule all:
    """Default target: the cube and every figure of the configured run."""
    default_target: True
    input:
        f"{RESULTS}/cube.nc",
        figure_files("png"),
        figure_files("pdf"),


rule cube:
    """The gathered cube only."""
    input:
        f"{RESULTS}/cube.nc",


rule cell:
    """One cell's compare.nc, made if missing: --config cell='{p: 0.5, lam: 0.8, seed: 1}'.
    To rerun a finished cell and all after it: --forcerun its network.nc."""
    input:
        requested_cell,
