"""CFM-fit and MFM-fit: the Freeman models with parameters fitted per cell (MODEL.md §5.3).

The paper derives the Freeman models' parameters. When CFM or MFM fails, the
derivation may be at fault or the model's form. The fitted models keep the
form of Eq. 20 (CFM) and Eq. 24 (MFM). Five parameters are fitted per cell
<p, λ>, pooled over its seeds:

- τ_s (ms);
- one gain s_σ per input type σ ∈ {E, I, ext}: it scales ĝ_σ/g_L, so
  s_σ = 1 is the derivation;
- an offset c (mV) added to V.

The fit minimises the sum over seeds of (V_model + c − V_LIF)² on the first
half [T0, T_mid) of the analysis window. The models are then judged on the
held-out half [T_mid, T), where every other model is scored as well
(:mod:`nmmval.analysis.measures`, ``*_held_out``). The split is on the step
grid: T_mid is step n0 + (n − n0)//2 (:func:`split_step`).

The search is bounded:

- τ_s ∈ [max(:data:`TAU_S_MIN_ms`, dt), ``masses.fit_tau_s_max_ms``];
- s_σ ∈ [0, ``masses.fit_gain_max``];
- ``|c|`` ≤ :data:`OFFSET_MAX_mV`.

A gain whose input is zero before T_mid in every seed has no effect on the
training half and cannot be identified. It stays at the derivation's 1.

- **CFM-fit:** V is affine in (s_E, s_I, s_ext, c) at a given τ_s. The
  scheme of :mod:`nmmval.models.freeman` is linear in the input and the
  initial state, so the gains and the offset come from a bounded linear
  least-squares problem (``scipy.optimize.lsq_linear``). τ_s is then found
  by a 1-D search: a log-spaced scan, refined by bounded Brent
  (``scipy.optimize.minimize_scalar``).
- **MFM-fit:** V depends on the gains nonlinearly (parametric forcing).
  Bounded trust-region least squares (``scipy.optimize.least_squares``)
  runs from two starts, the derivation and the CFM-fit. A start whose
  model diverges scores the largest residual there. A fit is rejected if
  its model diverges (non-finite V, or beyond ±:data:`DIVERGED_mV`) on the
  whole run of any seed. The best accepted fit is kept; if both are
  rejected, the better one is kept and flagged. The MFM-fit's traces are
  NaN from the first step beyond ±:data:`DIVERGED_mV` (the same criterion),
  so a rejected fit's traces diverge in some seed, and the protocol calls
  the model inadequate (reason ``diverged``). CFM-fit, linear in its input,
  cannot diverge (like CFM, it can leave the physical range).

``scipy.optimize`` is imported in the functions that fit: only the fit stage
runs them, and its import would add 0.2 s to the start-up of every masses
job, which imports this module through the model registry
(benchmarks/startup.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nmmval.config import Params
from nmmval.models.base import SYNAPSE_TYPES, Drive, MassModel, Output
from nmmval.models.freeman import Feedback, Stages, integrate, synaptic_input

#: the fitted parameters, in order: τ_s (ms), the gains s_E, s_I, s_ext (1), the offset c (mV)
PARAMETERS = ("tau_s_ms", *(f"gain_{s}" for s in SYNAPSE_TYPES), "offset_mV")
#: smallest τ_s searched (ms), raised to dt if dt is larger (Euler's stage needs dt/τ_s <= 1)
TAU_S_MIN_ms = 0.5
#: largest absolute offset (mV)
OFFSET_MAX_mV = 100.0
#: an MFM-fit whose |V| exceeds this (mV) anywhere has diverged (about 10x the physical range)
DIVERGED_mV = 1000.0
#: τ_s values of the CFM-fit's first scan, before the bounded refinement
_SCAN = 12
#: status of a fit (fit.nc ``fit_status``)
ACCEPTED, REJECTED = 0, 1


class Fit(NamedTuple):
    """One fitted Freeman model of one cell.

    Attributes
    ----------
    values : numpy.ndarray of float64, shape (5,)
        τ_s (ms), s_E, s_I, s_ext (1), c (mV): :data:`PARAMETERS`.
    rms_mV : float
        Root mean square of V_model − V_LIF on the training half, over all seeds (mV).
    rms_derived_mV : float
        The same for the derived parameters (τ_s = ``masses.tau_s_ms``, gains 1, no
        offset): how much the fit gained.
    status : int
        :data:`ACCEPTED`, or :data:`REJECTED` (the model diverges with these
        parameters in some seed).
    """

    values: np.ndarray
    rms_mV: float
    rms_derived_mV: float
    status: int


class _Seed(NamedTuple):
    """What the fit needs of one seed: its input, V̄ and the network's V."""

    feedback: Feedback
    Vbar_mV: float
    V_lif_mV: np.ndarray


def split_step(params: Params) -> int:
    """Step of T_mid, the start of the held-out half [T_mid, T) (MODEL.md §5.3).

    n0 + (n − n0)//2, with n0 = T0/dt and n = T/dt: the training half
    [T0, T_mid) has (n − n0)//2 samples, the held-out half the rest.
    """
    sim = params.simulation
    return sim.n0_steps + (sim.n_steps - sim.n0_steps) // 2


def derived(params: Params) -> np.ndarray:
    """The derivation's parameters: τ_s = ``masses.tau_s_ms``, gains 1, offset 0 mV."""
    return np.array([params.masses.tau_s_ms, 1.0, 1.0, 1.0, 0.0])


def bounds(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of :data:`PARAMETERS` (module notes)."""
    m = params.masses
    tau_min = max(TAU_S_MIN_ms, params.simulation.dt_ms)
    lower = np.array([tau_min, 0.0, 0.0, 0.0, -OFFSET_MAX_mV])
    upper = np.array([m.fit_tau_s_max_ms, *[m.fit_gain_max] * 3, OFFSET_MAX_mV])
    return lower, upper


def _stages(params: Params, tau_s_ms: float, v0_mV: float) -> Stages:
    return Stages(params.simulation.dt_ms, params.neuron.tau_m_ms, tau_s_ms, v0_mV)


def _scaled(feedback: Feedback, gains: np.ndarray, n: int | None = None) -> Feedback:
    """The input with ĝ_σ/g_L scaled by ``gains``, over its first ``n`` steps."""
    rate = feedback.rate_per_ms if n is None else feedback.rate_per_ms[:, :n]
    return Feedback(feedback.gain_ms * gains, feedback.v_syn_mV, np.ascontiguousarray(rate))


def cfm_trace(params: Params, feedback: Feedback, Vbar_mV: float, theta, n=None) -> np.ndarray:
    """CFM (Eq. 20) with parameters ``theta`` (:data:`PARAMETERS`), the first ``n`` steps (mV)."""
    fb = _scaled(feedback, np.asarray(theta[1:4]), n)
    J_mV = params.neuron.v_rest_mV - (fb.gain_ms * (Vbar_mV - fb.v_syn_mV)) @ fb.rate_per_ms
    return integrate(J_mV, _stages(params, float(theta[0]), Vbar_mV)) + theta[4]


def mfm_trace(params: Params, feedback: Feedback, Vbar_mV: float, theta, n=None) -> np.ndarray:
    """MFM (Eq. 24) with parameters ``theta`` (:data:`PARAMETERS`) over the first ``n`` steps (mV).

    The offset is added to the output; the dynamics run on the model's own V.
    """
    fb = _scaled(feedback, np.asarray(theta[1:4]), n)
    J0_mV = np.full(fb.rate_per_ms.shape[1], float(params.neuron.v_rest_mV))
    return integrate(J0_mV, _stages(params, float(theta[0]), Vbar_mV), fb) + theta[4]


def _residuals(trace, params, seeds, theta, n0, n_mid) -> np.ndarray:
    """V_model − V_LIF on [T0, T_mid) of every seed, one vector (mV)."""
    return np.concatenate(
        [trace(params, s.feedback, s.Vbar_mV, theta, n_mid)[n0:] - s.V_lif_mV[n0:n_mid]
         for s in seeds]
    )  # fmt: skip


def _rms(r: np.ndarray) -> float:
    return float(np.sqrt(np.mean(r * r))) if np.isfinite(r).all() else np.inf


def _identified(seeds: Sequence[_Seed], n_mid: int) -> np.ndarray:
    """Per synapse type: some seed has input before T_mid (otherwise its gain has no effect)."""
    return np.array([any(s.feedback.rate_per_ms[k, :n_mid].any() for s in seeds) for k in range(3)])


def _cfm_at(params, seeds, tau_s_ms, n0, n_mid, free) -> tuple[np.ndarray, float]:
    """The CFM-fit's best gains and offset at a given τ_s: bounded linear least squares.

    The scheme is linear in the input and the initial state, so V = B + Σ_σ s_σ C_σ + c
    with B the response to ṽ from V̄ and C_σ the response to type σ's input from 0.
    """
    import scipy.optimize

    columns, target = [], []
    for s in seeds:
        fb = s.feedback
        rest = np.full(n_mid, float(params.neuron.v_rest_mV))
        base = integrate(rest, _stages(params, tau_s_ms, s.Vbar_mV))
        per_type = [
            integrate(
                -fb.gain_ms[k] * (s.Vbar_mV - fb.v_syn_mV[k]) * fb.rate_per_ms[k, :n_mid],
                _stages(params, tau_s_ms, 0.0),
            )[n0:]
            for k in np.flatnonzero(free)
        ]
        columns.append(np.column_stack([*per_type, np.ones(n_mid - n0)]))
        target.append(s.V_lif_mV[n0:n_mid] - base[n0:])
    A, y = np.vstack(columns), np.concatenate(target)
    lower, upper = bounds(params)
    keep = np.append(free, True)
    sol = scipy.optimize.lsq_linear(A, y, bounds=(lower[1:][keep], upper[1:][keep]))
    theta = np.array([tau_s_ms, 1.0, 1.0, 1.0, 0.0])
    theta[1:][keep] = sol.x
    return theta, float(np.sqrt(2 * sol.cost / y.size))


def _fit_cfm(params, seeds, n0, n_mid) -> np.ndarray:
    """CFM-fit: τ_s by a log scan refined by bounded Brent, the rest linear at each τ_s."""
    import scipy.optimize

    free = _identified(seeds, n_mid)
    lower, upper = bounds(params)

    def rms_at(tau):
        return _cfm_at(params, seeds, tau, n0, n_mid, free)[1]

    scan = np.geomspace(lower[0], upper[0], _SCAN)
    best = int(np.argmin([rms_at(t) for t in scan]))
    lo, hi = scan[max(best - 1, 0)], scan[min(best + 1, _SCAN - 1)]
    res = scipy.optimize.minimize_scalar(rms_at, bounds=(lo, hi), method="bounded")
    return _cfm_at(params, seeds, float(res.x), n0, n_mid, free)[0]


def _beyond(v_mV: np.ndarray) -> np.ndarray:
    """Where a trace has left ±DIVERGED_mV or turned non-finite: the fit's divergence."""
    return ~(np.abs(v_mV) <= DIVERGED_mV)


def _diverges(trace, params, seeds, theta) -> bool:
    """The model diverges (:func:`_beyond`) over the whole run of some seed."""
    return any(_beyond(trace(params, s.feedback, s.Vbar_mV, theta)).any() for s in seeds)


def _fit_mfm(params, seeds, n0, n_mid, starts) -> tuple[np.ndarray, int]:
    """MFM-fit: bounded trust-region least squares from each start; the best not diverging."""
    import scipy.optimize

    free = np.concatenate([[True], _identified(seeds, n_mid), [True]])
    lower, upper = bounds(params)

    def theta_of(x):  # the free parameters x; the others stay the derivation's
        theta = np.array(starts[0], dtype=np.float64)
        theta[free] = x
        return theta

    def residuals(x):
        r = _residuals(mfm_trace, params, seeds, theta_of(x), n0, n_mid)
        return np.clip(np.nan_to_num(r, nan=DIVERGED_mV), -DIVERGED_mV, DIVERGED_mV)

    candidates = []
    for start in starts:
        x0 = np.clip(np.asarray(start, dtype=np.float64), lower, upper)[free]
        res = scipy.optimize.least_squares(
            residuals, x0, bounds=(lower[free], upper[free]), x_scale="jac", max_nfev=100
        )
        theta = theta_of(res.x)
        status = REJECTED if _diverges(mfm_trace, params, seeds, theta) else ACCEPTED
        candidates.append((status, res.cost, theta))
    status, _, theta = min(candidates, key=lambda c: (c[0], c[1]))
    return theta, status


def fit_cell(drives: Sequence[Drive], V_lif_mV: Sequence[np.ndarray], params: Params) -> dict:
    """Fit CFM-fit and MFM-fit to one cell's seeds on the training half (MODEL.md §5.3).

    Parameters
    ----------
    drives : sequence of Drive
        Each seed's recorded input (:func:`nmmval.masses.drive`).
    V_lif_mV : sequence of numpy.ndarray
        Each seed's network potential V(t) over the whole run (mV).
    params : nmmval.config.Params
        The run's parameters (neuron, ĝ_σ, ṽ_σ, the time grid, ``masses.fit_*``).

    Returns
    -------
    dict of str to Fit
        ``{"CFM-fit": Fit, "MFM-fit": Fit}``.
    """
    n0, n_mid = params.simulation.n0_steps, split_step(params)
    seeds = [
        _Seed(synaptic_input(d, params), float(d.Vbar_mV), np.asarray(v, dtype=np.float64))
        for d, v in zip(drives, V_lif_mV, strict=True)
    ]
    ref = derived(params)
    cfm = _fit_cfm(params, seeds, n0, n_mid)
    mfm, mfm_status = _fit_mfm(params, seeds, n0, n_mid, (ref, cfm))
    out = {}
    for name, trace, theta, status in (
        (CFM_FIT.name, cfm_trace, cfm, ACCEPTED),
        (MFM_FIT.name, mfm_trace, mfm, mfm_status),
    ):
        rms = _rms(_residuals(trace, params, seeds, theta, n0, n_mid))
        rms_ref = _rms(_residuals(trace, params, seeds, ref, n0, n_mid))
        out[name] = Fit(theta, rms, rms_ref, status)
    return out


def _run(trace, name, can_diverge):
    def run(drive: Drive, params: Params) -> Output:
        if drive.fit is None or name not in drive.fit:
            raise ValueError(f"{name}: the drive has no fitted parameters (fit.nc of the cell)")
        theta = np.asarray(drive.fit[name], dtype=np.float64)
        V = trace(params, synaptic_input(drive, params), float(drive.Vbar_mV), theta)
        if can_diverge:  # diverged by the fit's criterion: no value from there on
            beyond = _beyond(V)
            if beyond.any():
                V[np.argmax(beyond) :] = np.nan
        return Output(V)

    run.__doc__ = (
        f"{name}: the Freeman model with the cell's fitted τ_s, gains and offset "
        "(``drive.fit``, :data:`PARAMETERS`), over the whole run (mV; MODEL.md §5.3)."
        + (
            " NaN from the first step where |V| exceeds :data:`DIVERGED_mV`: the criterion "
            "that rejects a fit, so a rejected fit's traces are flagged diverged in some seed."
            if can_diverge
            else ""
        )
    )
    return run


CFM_FIT = MassModel(
    name="CFM-fit",
    run=_run(cfm_trace, "CFM-fit", can_diverge=False),
    long_name="CFM-fit potential (Eq. 20, fitted)",
    comment="CFM with tau_s, one gain per input type and an offset fitted per cell on the first "
    "half of the analysis window, pooled over seeds; judged on the held-out half (MODEL.md §5.3)",
    colour="tab:brown",
    fitted=True,
    below=("CFM",),
    adds="parameters fitted per cell, not derived",
)
MFM_FIT = MassModel(
    name="MFM-fit",
    run=_run(mfm_trace, "MFM-fit", can_diverge=True),
    long_name="MFM-fit potential (Eq. 24, fitted)",
    comment="MFM with tau_s, one gain per input type and an offset fitted per cell on the first "
    "half of the analysis window, pooled over seeds, rejected if it diverges; judged on the "
    "held-out half (MODEL.md §5.3)",
    colour="tab:cyan",
    fitted=True,
    below=("MFM",),
    adds="parameters fitted per cell, not derived",
)
