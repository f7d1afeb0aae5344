"""nmmval: when can a neural mass model stand in for its spiking network?

Reproduction and extension of Deschle et al. (2021), "On the Validity of
Neural Mass Models", Front. Comput. Neurosci. 14:581040.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nmmval")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
