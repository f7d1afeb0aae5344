"""The spiking network's machinery (MODEL.md §2-4): the graphs
(:mod:`~nmmval.sim.network`), the random streams (:mod:`~nmmval.sim.rng`),
the Numba kernel (:mod:`~nmmval.sim.kernel`) with its step barrier
(:mod:`~nmmval.sim.barrier`) and thread governor (:mod:`~nmmval.sim.threads`),
and its driver :func:`nmmval.sim.lif.simulate`."""
