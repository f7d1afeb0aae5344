rule simulate:
    """One LIF network run of cell <p, lam, seed>: V, Phi and synchrony."""
    output:
        f"{CELL}/network.nc",
    log:
        f"{LOGS}/simulate/{CELL_PATTERN}.log",
    benchmark:
        f"{BENCH}/simulate/{CELL_PATTERN}.tsv"
    conda:
        "../../envs/nmmval.yaml"
    threads: SIMULATE_THREADS
    resources:
        mem_mb=simulate_mem_mb,
        runtime=simulate_runtime,
    params:
        config=RESOLVED_CONFIG,
        science=SCIENCE_SIMULATE,
    shell:
        "nmmval simulate --config {params.config} --p {wildcards.p} --lam {wildcards.lam}"
        " --seed {wildcards.seed} --threads {threads} --out {output} > {log} 2>&1"
