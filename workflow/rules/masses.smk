rule masses:
    """Every registered mass model (nmmval.models) driven by the cell's recorded input Phi, the
    fitted ones with the parameters of the cell's fit.nc."""
    input:
        network=f"{CELL}/network.nc",
        fit=FIT,
    output:
        f"{CELL}/masses.nc",
    log:
        f"{LOGS}/masses/{CELL_PATTERN}.log",
    benchmark:
        f"{BENCH}/masses/{CELL_PATTERN}.tsv"
    conda:
        "../../envs/nmmval.yaml"
    threads: 1
    resources:
        mem_mb=MASSES_MEM_MB,
        runtime=10,
    params:
        config=RESOLVED_CONFIG,
        science=SCIENCE_MASSES,
    shell:
        "nmmval masses --config {params.config} --network {input.network}"
        " --fit {input.fit} --out {output} > {log} 2>&1"
