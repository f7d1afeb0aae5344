rule figures:
    """Heat maps on the (p, lambda) plane and the diagnostic pages, PDF + PNG."""
    input:
        cube=f"{RESULTS}/cube.nc",
        networks=diagnostic_files("network.nc"),
        masses=diagnostic_files("masses.nc"),
    output:
        report_figures(),
        figure_files("pdf"),
    log:
        f"{LOGS}/figures.log",
    conda:
        "../../envs/nmmval.yaml"
    params:
        config=RESOLVED_CONFIG,
        results=lambda w, output: os.path.dirname(os.path.dirname(output[0])),
        outdir=lambda w, output: os.path.dirname(output[0]),
        science=SCIENCE_FIGURES,
    shell:
        "MPLBACKEND=Agg nmmval figures --config {params.config} --cube {input.cube}"
        " --results {params.results} --outdir {params.outdir} > {log} 2>&1"
