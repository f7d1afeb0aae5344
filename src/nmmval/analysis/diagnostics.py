"""Per-seed diagnostics of what the mass models assume (MODEL.md §4, §5.1).

Reported per cell beside the verdicts, never hidden (§5.1):

- :func:`sum_conductance`: ΣḠ, the time mean of Σ_σ ĝ_σ Φ_σ/g_L, the
  network's input conductance in units of the leak; it sets the CFM's mean
  ``V̄ + (1 + ΣḠ)(V* − V̄)`` and the MFM's damping;
- :func:`damping_ratio`: ζ of the MFM's linearisation,
  ``(τ_m + τ_s)/(2·sqrt(τ_m τ_s (1 + ΣḠ)))`` (over-damped for ζ >= 1);
- :func:`closure_error`: Σ_σ (⟨g_σ v⟩ − ⟨g_σ⟩⟨v⟩)/g_L per population, the
  term the closure ⟨g v⟩ ≈ ⟨g⟩⟨v⟩ of Eqs. 17, 22, 23 drops (mV);
- :func:`divergence_time`: when a mass model's potential stopped being finite;
- :func:`rate_agreement`: a predicted population rate (the PDM's r_P, MODEL.md
  §5.2) against the network's A_P: relative error of the mean, correlation.
"""

from __future__ import annotations

import numpy as np


def sum_conductance(gain_ms: np.ndarray, rate_per_ms: np.ndarray) -> float:
    """ΣḠ: the time mean of Σ_σ (ĝ_σ/g_L) Φ_σ(t) (MODEL.md §5.1).

    Parameters
    ----------
    gain_ms : array_like, shape (S,)
        ĝ_σ/g_L per synapse type (ms): ĝ in nS·ms, g_L in nS.
    rate_per_ms : array_like, shape (S, n)
        Φ_σ = φ_σ/dt at every step of the window [T0, T) (1/ms).

    Returns
    -------
    float
        ΣḠ (dimensionless).
    """
    gain_ms = np.asarray(gain_ms, dtype=np.float64)
    return float((gain_ms @ np.asarray(rate_per_ms, dtype=np.float64)).mean())


def damping_ratio(tau_m_ms: float, tau_s_ms: float, sum_G: float) -> float:
    """ζ = (τ_m + τ_s)/(2·sqrt(τ_m τ_s (1 + ΣḠ))), the MFM's linearised damping (§5.1).

    Parameters
    ----------
    tau_m_ms, tau_s_ms : float
        Membrane (c/g_L) and Freeman synaptic time constants (ms).
    sum_G : float
        ΣḠ (:func:`sum_conductance`).

    Returns
    -------
    float
        ζ (dimensionless); ζ >= 1 is over-damped (ΣḠ <= 0.5625 at τ_m = 20,
        τ_s = 5 ms).
    """
    return float((tau_m_ms + tau_s_ms) / (2.0 * np.sqrt(tau_m_ms * tau_s_ms * (1.0 + sum_G))))


def closure_error(cov_gv_nSmV: np.ndarray, g_L_nS: float) -> np.ndarray:
    """Time mean of Σ_σ (⟨g_σ v⟩ − ⟨g_σ⟩⟨v⟩)/g_L per population (MODEL.md §4).

    Parameters
    ----------
    cov_gv_nSmV : array_like, shape (S, P, n)
        ⟨g_σ v⟩ − ⟨g_σ⟩⟨v⟩ over the cells of each population at each recorded
        step of the window (nS·mV); n may be 0 (no closure recordings).
    g_L_nS : float
        Leak conductance (nS).

    Returns
    -------
    numpy.ndarray, shape (P,)
        The closure error (mV); NaN without recordings.
    """
    cov = np.asarray(cov_gv_nSmV, dtype=np.float64)
    if cov.shape[-1] == 0:
        return np.full(cov.shape[1], np.nan)
    return cov.sum(axis=0).mean(axis=-1) / g_L_nS


def divergence_time(v_mV: np.ndarray, time_ms: np.ndarray) -> float:
    """Time of a potential's first non-finite sample (ms), NaN if it has none.

    A mass model's stored potential is NaN from the step it diverged on
    (:mod:`nmmval.masses`).

    Parameters
    ----------
    v_mV : array_like, shape (n,)
        The potential over the whole run.
    time_ms : array_like, shape (n,)
        Time of each sample (ms).
    """
    bad = ~np.isfinite(np.asarray(v_mV))
    return float(np.asarray(time_ms)[np.argmax(bad)]) if bad.any() else float("nan")


def rate_agreement(model_Hz: np.ndarray, network_Hz: np.ndarray, bin_steps: int) -> tuple:
    """A model's population rate against the network's over the window (MODEL.md §5.2).

    Parameters
    ----------
    model_Hz : array_like, shape (n,)
        The model's rate r_P at every step of [T0, T) (Hz).
    network_Hz : array_like, shape (n,)
        The network's A_P = n_P/(N_P·dt) at the same steps (Hz).
    bin_steps : int
        Both are averaged over consecutive bins of this many steps (a last,
        incomplete bin is dropped) before they are correlated.

    Returns
    -------
    rel_error : float
        ``(mean r_P − mean A_P)/mean A_P`` over the window (dimensionless);
        NaN if the network's population is silent (mean 0) or a rate is NaN.
    corr : float
        Pearson correlation of the binned r_P and A_P; NaN if either is
        constant (or NaN) or there are fewer than two bins.
    """
    r = np.asarray(model_Hz, dtype=np.float64)
    A = np.asarray(network_Hz, dtype=np.float64)
    mean_A = A.mean()
    rel_error = (r.mean() - mean_A) / mean_A if mean_A > 0 else float("nan")
    n_bins = r.size // bin_steps
    if n_bins < 2:
        return float(rel_error), float("nan")
    binned = [x[: n_bins * bin_steps].reshape(n_bins, bin_steps).mean(axis=1) for x in (r, A)]
    if not all(np.ptp(x) > 0 for x in binned):  # constant (or NaN): no correlation
        return float(rel_error), float("nan")
    dr, dA = (x - x.mean() for x in binned)
    return float(rel_error), float(np.sum(dr * dA) / np.sqrt(np.sum(dr * dr) * np.sum(dA * dA)))
