"""The COBA benchmark's config (config/coba.yaml): Vogels-Abbott in nmmval's model,
self-sustained without external drive or membrane noise."""

import numpy as np

from nmmval import config
from nmmval.sim import lif

from conftest import ROOT


def test_coba_sustains_itself_without_drive_or_noise():
    """Vogels-Abbott at full size for 0.4 s: firing in every 100 ms to the end, at the
    benchmark's rates (10-40 Hz), no external event."""
    params = config.load(ROOT / "config" / "coba.yaml", ["simulation.T_ms=400"])
    rec = lif.simulate(params, 0.02, 0.8, 0, threads=1)
    assert params.network.M == 0 and params.neuron.noise_Q_V2ms == 0.0
    assert not rec.phi_ext.any()
    steps_per_100ms = int(round(100 / params.simulation.dt_ms))
    per_window = np.bincount(rec.spike_step // steps_per_100ms, minlength=4)
    rates_Hz = per_window / (params.network.N * 0.1)
    assert (rates_Hz > 5).all(), rates_Hz
    assert 10 < rec.rate_E_Hz < 40 and 10 < rec.rate_I_Hz < 40
