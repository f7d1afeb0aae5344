"""nmmval: when can a neural mass model stand in for its spiking network?

Reproduction and extension of Deschle et al. (2021), "On the Validity of
Neural Mass Models", Front. Comput. Neurosci. 14:581040.
"""

import os
from importlib.metadata import PackageNotFoundError, version

# The kernels synchronise their threads at every time step (~0.1 ms of work).
# GNU OpenMP's default spin of ~300 000 iterations before sleeping turns any
# other process on the cores into a many-fold slowdown, and sleeping at once
# (OMP_WAIT_POLICY=passive) makes every barrier pay a wake-up. A short spin is
# best of both (benchmarks/README.md: N = 10 000, p = 0.01, 1 s on 2 threads:
# loop 0.92 s idle and 5.3 s beside two busy processes, against 2.57 s and
# 4.2 s passive, 32.6 s with a 100 000 spin). Set before Numba starts its
# OpenMP runtime; a value the user exported wins.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")
# The simulation kernel's threads wait for each other at every step
# (nmmval.sim.barrier), so each part needs a thread of its own, which OpenMP and
# workqueue give and TBB's tasks do not; Numba would try TBB first.
os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", "omp workqueue tbb")

try:
    __version__ = version("nmmval")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
