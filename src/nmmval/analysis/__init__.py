"""Measures on the network's and the models' traces (MODEL.md §6): spectra
and χ² (:mod:`~nmmval.analysis.spectra`), lagged correlation
(:mod:`~nmmval.analysis.xcorr`), Spike-contrast synchrony
(:mod:`~nmmval.analysis.synchrony`), their registry
(:mod:`~nmmval.analysis.measures`) and the validation protocol
(:mod:`~nmmval.analysis.protocol`). Arrays in, arrays out: no files."""
