rule gather:
    """The cube: every cell's compare.nc in one file, seeds combined, and every fit.nc."""
    input:
        cell_files("compare.nc"),
        fit_files(),
    output:
        f"{RESULTS}/cube.nc",
    log:
        f"{LOGS}/gather.log",
    conda:
        "../../envs/nmmval.yaml"
    params:
        config=RESOLVED_CONFIG,
        results=lambda w, output: os.path.dirname(output[0]),
        science=SCIENCE_GATHER,
    shell:
        "nmmval gather --config {params.config} --results {params.results}"
        " --out {output} > {log} 2>&1"
