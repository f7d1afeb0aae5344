rule compare:
    """Spectra, median frequencies, lagged correlations, the validation protocol's per-seed
    pieces and the diagnostics of one cell."""
    input:
        network=f"{CELL}/network.nc",
        masses=f"{CELL}/masses.nc",
    output:
        f"{CELL}/compare.nc",
    log:
        f"{LOGS}/compare/{CELL_PATTERN}.log",
    benchmark:
        f"{BENCH}/compare/{CELL_PATTERN}.tsv"
    conda:
        "../../envs/nmmval.yaml"
    threads: 1
    resources:
        mem_mb=COMPARE_MEM_MB,
        runtime=10,
    params:
        config=RESOLVED_CONFIG,
        science=SCIENCE_COMPARE,
    shell:
        "nmmval compare --config {params.config} --network {input.network}"
        " --masses {input.masses} --out {output} > {log} 2>&1"
