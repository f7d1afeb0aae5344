"""nmmval: when can a neural mass model stand in for its spiking network?

Reproduction and extension of Deschle et al. (2021), "On the Validity of
Neural Mass Models", Front. Comput. Neurosci. 14:581040.
"""

import os
from importlib.metadata import PackageNotFoundError, version

# The kernels synchronise their threads at every time step. GNU OpenMP's
# default busy-waiting there turns any other process on the cores (a shared
# node, a second job) into a many-fold slowdown (benchmarks/README.md); sleeping
# waiters cost little. Set before Numba starts its OpenMP runtime; a value the
# user exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

try:
    __version__ = version("nmmval")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
