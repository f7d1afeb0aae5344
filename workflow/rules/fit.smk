rule fit:
    """The fitted Freeman models' parameters of one cell <p, lam>, pooled over its seeds, on the
    first half of the analysis window (MODEL.md section 5.3)."""
    input:
        lambda w: [f"{CELL.format(seed=s, p=w.p, lam=w.lam)}/network.nc" for s in SEEDS],
    output:
        FIT,
    log:
        f"{LOGS}/fit/{FIT_PATTERN}.log",
    benchmark:
        f"{BENCH}/fit/{FIT_PATTERN}.tsv"
    conda:
        "../../envs/nmmval.yaml"
    threads: 1
    resources:
        mem_mb=FIT_MEM_MB,
        runtime=10,
    params:
        config=RESOLVED_CONFIG,
        science=SCIENCE_MASSES,
    shell:
        "nmmval fit --config {params.config} --network {input} --out {output} > {log} 2>&1"
