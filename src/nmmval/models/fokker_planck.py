"""PDM: the population-density (Fokker–Planck) model of MODEL.md §5.2.

Per population P ∈ {E, I}, the density ρ_P(v, t) of the free
(non-refractory) cells, as a fraction of N_P per mV, obeys

    ∂ρ/∂t = -∂_v[a(v, t) ρ] + D ∂²_v ρ   on [v_min, v_b],
    a(v, t) = [-(v - ṽ) - Σ_σ (G_σ^P(t)/g_L)(v - ṽ_σ)]/τ_m = k(t)(V*(t) - v)/τ_m,
    D = Q/(2 τ_m²)   (mV²/ms),

with the conductances G_σ^P of :func:`nmmval.models.cbm.conductances` (the
network's, arrivals of step n felt from step n + 1) and k, V* of
:func:`nmmval.models.cbm.drive`. This is the Fokker–Planck equation of the
network's membrane (Eq. 11a) with every cell of P seeing the mean
conductance: it keeps threshold, reset, refractoriness, the voltage
distribution and the multiplicative (shunting) drive, and drops the spread
of conductances across cells and finite-N fluctuations.

Boundaries: reflecting (zero flux) at v_min (default ṽ_I - 10 mV, below
every reversal potential, which the drift never crosses); absorbing
(ρ = 0) at v_b = v_th + β·sqrt(Q·dt)/τ_m with β = -ζ(1/2)/sqrt(2π) ≈ 0.5826
(``boundary_correction``, default on) or at v_th (off). The network checks
v ≥ v_th once per Euler–Maruyama step and misses the crossings inside a
step; shifting the absorbing boundary by the mean overshoot of a Gaussian
random walk (Siegmund's corrected diffusion) makes the continuous equation
fire as the discrete network does (MODEL.md §5.2). The flux out is the
model rate r_P(t); that probability is refractory for n_ref = round(τ_ref/dt)
steps (a delay line, at least one step) and re-enters at v_reset. As in the
network, what crosses in step n is refractory at the start of steps
n + 1 .. n + n_ref and free at the start of step n + n_ref + 1; it enters
as the source of the implicit step n + n_ref, in which its refractory
period ends (crossings, and so returns, are spread over a step). The
stationary rate is then ν = 1/(τ_ref + T) with T the mean first-passage
time of the semi-discrete equation, as in continuous time; adding the
returns after the implicit step instead would lengthen the refractory
period by dt (rate -ν·dt, -1.2 % at 120 Hz).

Discretisation: conservative finite volumes of width h = (v_b - v_min)/n_bins
with Scharfetter–Gummel fluxes, exact for a constant drift between two cell
centres and upwind in the drift-dominated limit (so positive at any Péclet
number): ``J = (D/h)·[B(-z) ρ_i - B(z) ρ_{i+1}]``, z = a h/D, B(z) = z/(e^z - 1),
a at the face; without noise (Q = 0) its limit, the upwind flux a·ρ of pure
transport. At the absorbing boundary the same flux over the half cell to
ρ(v_b) = 0. Backward Euler in time with the drift of the step (one
tridiagonal solve, Thomas algorithm, per step and population): an M-matrix,
so the density stays non-negative and is unconditionally stable, and since
every flux leaves one cell and enters its neighbour or the delay line,
probability is conserved to round-off. Its stationary state is that of the
semi-discrete equation, independent of dt. The reset mass goes to the two
cells around v_reset with weights that put its mean exactly at v_reset.

Initial state: uniform on [v_reset, v_th] (the network's), nobody
refractory.

Registered as the mass model "PDM" (:data:`MODEL`), driven by the recorded
φ_σ^P of :class:`nmmval.models.base.Drive` on the grid of the config's
``masses.pdm_n_bins``, ``masses.pdm_v_min_mV`` and
``masses.pdm_boundary_correction``; masses.nc holds V, V_E and V_I
(``V_pop_pdm``) and r_E, r_I (``r_pdm``).

Outputs per step (start of the step, as the network records V[n]):
``V_P = ∫ v ρ_P dv + R_P·v_reset`` (mV, R_P the refractory fraction), and
r_P[n], the probability that crossed in step n divided by dt (Hz), the
model's counterpart of the network's A_P = n_P/(N_P·dt).

Default grid: 200 cells, h ≈ 0.2 mV over the default [-90, -49.8] mV: 14
cells per standard deviation of the free membrane (sqrt(Q/2τ_m) = 2.8 mV
at Q = 318 mV²·ms) and 4 at ten times the leak conductance. The scheme
converges at second order in h; at 200 cells the stationary rate is within
0.2 % and V within 0.004 mV of the analytic solution, and doubling the
grid changes the rate by < 0.15 % and V by < 0.01 mV
(tests/test_fokker_planck.py), while a 30 s cell (3·10⁵ steps, two
populations) costs 1.8 s of CPU on one thread (3.1 s at 400 cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.special import zeta

from nmmval.config import Params
from nmmval.datasets import Var
from nmmval.models.base import Drive, MassModel, Output
from nmmval.models.cbm import CBMResult, check_inputs, combine, drive, population_potentials

__all__ = ["BETA", "MODEL", "RATE", "PDMResult", "absorbing_boundary_mV", "pdm", "run"]

#: masses.nc variable of the PDM's rates r_E, r_I (Hz)
RATE = "r_pdm"

#: Siegmund's constant -ζ(1/2)/sqrt(2π) ≈ 0.5826: mean overshoot of a Gaussian
#: random walk over a barrier, in units of the step's standard deviation
BETA = float(-zeta(0.5) / math.sqrt(2.0 * math.pi))


@dataclass(frozen=True)
class PDMResult(CBMResult):
    """PDM potentials (see :class:`nmmval.models.cbm.CBMResult`), rates and masses.

    Attributes
    ----------
    rate_E_Hz, rate_I_Hz : ndarray, float64, (n_steps,)
        r_P: probability flux through the absorbing boundary in each step,
        per second (Hz); NaN for an empty population.
    free_E, free_I, refractory_E, refractory_I : ndarray, float64, (n_steps,)
        ∫ρ_P dv and R_P at the start of each step (fractions of N_P; their
        sum is 1 to round-off); NaN for an empty population.
    """

    rate_E_Hz: np.ndarray
    rate_I_Hz: np.ndarray
    free_E: np.ndarray
    free_I: np.ndarray
    refractory_E: np.ndarray
    refractory_I: np.ndarray


def absorbing_boundary_mV(params: Params, boundary_correction: bool = True) -> float:
    """Position of the PDM's absorbing boundary (mV, MODEL.md §5.2).

    ``v_th + β·sqrt(Q·dt)/τ_m`` with β = :data:`BETA` if ``boundary_correction``
    (sqrt(Q·dt)/τ_m is the standard deviation of the network's noise per
    step), else v_th.
    """
    neu, dt = params.neuron, params.simulation.dt_ms
    shift = BETA * math.sqrt(neu.noise_Q_mV2ms * dt) / neu.tau_m_ms if boundary_correction else 0.0
    return float(neu.v_th_mV) + shift


@njit(cache=True)
def _bernoulli(z):
    """B(z) = z/(e^z - 1), B(0) = 1; B(-z) = B(z) + z."""
    if abs(z) < 1e-8:
        return 1.0 - 0.5 * z
    return z / math.expm1(z)


@njit(cache=True)
def _against(a, d, inv_d):
    """Scharfetter–Gummel weight of the downstream node, ``d·B(a/d)`` (mV/ms).

    ``a`` the drift at the face (mV/ms), ``d = D/Δ`` with Δ the distance of the
    two nodes (mV/ms), ``inv_d = 1/d``. The flux is ``(a + q)·ρ_up - q·ρ_down``
    with q this weight; for d = 0 (no noise) its limit ``max(-a, 0)``, the
    upwind flux of pure transport.
    """
    if d == 0.0:
        return max(-a, 0.0)
    return d * _bernoulli(a * inv_d)


@njit(cache=True)
def _pdm_kernel(k, v_inf, m, n_ref, dt, tau_m, diff, v_min, h, i_reset, w_reset, v_reset):
    """Advance the density ``m`` (probability per cell) through every step.

    Returns (V, rate per ms, free mass, refractory mass), one value per step
    at its start (the rate: flux of the step).
    """
    n_steps = k.size
    n_bins = m.size
    V = np.empty(n_steps)
    rate = np.empty(n_steps)
    free = np.empty(n_steps)
    refr = np.empty(n_steps)
    ring = np.zeros(n_ref)  # probability that crossed in the last n_ref steps
    centre = v_min + (np.arange(n_bins) + 0.5) * h
    cp = np.empty(n_bins)  # Thomas: modified upper diagonal
    c = dt / h  # flux (mV/ms) to the change of a cell's probability per step
    d_face, d_half = diff / h, 2.0 * diff / h  # D/Δ between two centres, centre and boundary
    inv_face = h / diff if diff > 0 else 0.0
    inv_half = 0.5 * inv_face
    for i in range(n_steps):
        R = 0.0
        for j in range(n_ref):
            R += ring[j]
        mass = 0.0
        first = 0.0
        for j in range(n_bins):
            mass += m[j]
            first += centre[j] * m[j]
        V[i] = first + R * v_reset
        free[i] = mass
        refr[i] = R
        # what crossed n_ref steps ago re-enters now, as the source of this step
        slot = i % n_ref
        back = ring[slot]
        m[i_reset] += (1.0 - w_reset) * back
        m[i_reset + 1] += w_reset * back
        # backward Euler, one row per cell j, forward sweep of the Thomas algorithm:
        # (1 + up_j + down_{j-1}) m_j - up_{j-1} m_{j-1} - down_j m_{j+1} = m_j(old),
        # up_j = (dt/h)(a_j + q_j), down_j = (dt/h) q_j at the upper face of cell j
        # (q_j = (D/h)·B(a_j h/D), :func:`_against`)
        kappa = k[i] / tau_m
        vs = v_inf[i]
        down = 0.0  # down_{j-1} (0 at v_min: reflecting)
        up_prev = 0.0  # up_{j-1}
        for j in range(n_bins):
            if j < n_bins - 1:
                a = kappa * (vs - (v_min + (j + 1) * h))
                q = _against(a, d_face, inv_face)
                up = c * (a + q)
                dn = c * q
            else:  # half cell to the absorbing boundary, ρ(v_b) = 0
                a = kappa * (vs - (v_min + (j + 0.75) * h))
                up = c * (a + _against(a, d_half, inv_half))
                dn = 0.0
            diag = 1.0 + up + down
            lower = -up_prev
            den = diag - lower * cp[j - 1] if j > 0 else diag
            cp[j] = -dn / den
            m[j] = (m[j] - lower * m[j - 1]) / den if j > 0 else m[j] / den
            down = dn
            up_prev = up
        for j in range(n_bins - 2, -1, -1):
            m[j] -= cp[j] * m[j + 1]
        out = up_prev * m[n_bins - 1]
        rate[i] = out / dt
        ring[slot] = out
    return V, rate, free, refr


def pdm(
    phi_E: np.ndarray,
    phi_I: np.ndarray,
    N_E: int,
    N_I: int,
    params: Params,
    n_bins: int = 200,
    v_min_mV: float | None = None,
    boundary_correction: bool = True,
) -> PDMResult:
    """PDM: the Fokker–Planck population density of each population (MODEL.md §5.2).

    Parameters
    ----------
    phi_E, phi_I : array_like, shape (3, n_steps)
        φ_σ^E, φ_σ^I: type-σ arrivals on the cells of the population in each
        step divided by its size (spikes per neuron per step), rows E, I, ext.
    N_E, N_I : int
        Population sizes (weights of V).
    params : nmmval.config.Params
        Uses ``network.tau_*_ms``, ``network.g_hat_*_nSms``, ``network.v_*_mV``,
        ``neuron.tau_m_ms``, ``neuron.g_L_nS``, ``neuron.v_rest_mV``,
        ``neuron.v_th_mV``, ``neuron.v_reset_mV``, ``neuron.tau_ref_ms``,
        ``neuron.noise_Q_V2ms`` (Q, used in mV²·ms; Q = 0 is pure transport,
        upwind) and ``simulation.dt_ms``.
        The delay line holds n_ref = round(τ_ref/dt) steps, at least one:
        with τ_ref < dt/2 the flux re-enters in the step after its crossing.
    n_bins : int
        Finite volumes on [v_min, v_b] (default 200, h ≈ 0.2 mV; see the
        module docstring for the accuracy and cost).
    v_min_mV : float, optional
        Reflecting lower boundary (mV); default ṽ_I - 10 mV, where the
        drift points up at any conductance.
    boundary_correction : bool
        Put the absorbing boundary at v_th + β·sqrt(Q·dt)/τ_m (default) to
        match the network's once-per-step threshold check, or at v_th (the
        continuous-time equation); see :func:`absorbing_boundary_mV`.

    Returns
    -------
    PDMResult

    Raises
    ------
    ValueError
        If n_bins < 2, or v_reset is not between the first and the last cell
        centre.
    """
    phi_E, phi_I = check_inputs(phi_E, phi_I, N_E, N_I)
    net, neu, dt = params.network, params.neuron, params.simulation.dt_ms
    diff = neu.noise_Q_mV2ms / (2.0 * neu.tau_m_ms**2)
    if n_bins < 2:
        raise ValueError(f"n_bins: {n_bins} must be >= 2")
    v_min = float(net.v_I_mV - 10.0 if v_min_mV is None else v_min_mV)
    v_b = absorbing_boundary_mV(params, boundary_correction)
    h = (v_b - v_min) / n_bins
    x = (neu.v_reset_mV - v_min) / h - 0.5  # v_reset in units of cells from the first centre
    if not 0.0 <= x <= n_bins - 1:
        raise ValueError(
            f"v_min_mV: {v_min} leaves v_reset = {neu.v_reset_mV} mV outside the cell centres "
            f"of [{v_min}, {v_b:.4g}] mV with {n_bins} bins"
        )
    i_reset = min(int(x), n_bins - 2)
    faces = v_min + h * np.arange(n_bins + 1)
    overlap = np.clip(
        np.minimum(faces[1:], neu.v_th_mV) - np.maximum(faces[:-1], neu.v_reset_mV), 0.0, None
    )
    n_ref = max(1, int(round(neu.tau_ref_ms / dt)))
    out = {}
    for P, phi, N_P in (("E", phi_E, N_E), ("I", phi_I, N_I)):
        if N_P == 0:
            out[P] = [np.full(phi.shape[1], np.nan) for _ in range(4)]
            continue
        k, v_inf = drive(phi, params)
        V, rate, free, refr = _pdm_kernel(
            k,
            v_inf,
            overlap / overlap.sum(),
            n_ref,
            float(dt),
            float(neu.tau_m_ms),
            diff,
            v_min,
            h,
            i_reset,
            x - i_reset,
            float(neu.v_reset_mV),
        )
        out[P] = [V, 1e3 * rate, free, refr]
    (V_E, r_E, f_E, R_E), (V_I, r_I, f_I, R_I) = out["E"], out["I"]
    return PDMResult(
        V_mV=combine(V_E, V_I, N_E, N_I),
        V_E_mV=V_E,
        V_I_mV=V_I,
        rate_E_Hz=r_E,
        rate_I_Hz=r_I,
        free_E=f_E,
        free_I=f_I,
        refractory_E=R_E,
        refractory_I=R_I,
    )


def run(drive: Drive, params: Params) -> Output:
    """PDM driven by the recorded arrivals φ_σ^P (MODEL.md §5.2; :func:`pdm`).

    Starts from the network's initial density, uniform on [v_reset, v_th];
    grid and boundary from ``masses.pdm_n_bins``, ``masses.pdm_v_min_mV``
    (mV) and ``masses.pdm_boundary_correction``.

    Returns
    -------
    Output
        V (mV), ``V_pop_pdm``: V_E, V_I (mV) and ``r_pdm``: r_E, r_I (Hz),
        each of shape (2, n_steps).
    """
    phi_E, phi_I = drive.populations("PDM")
    m = params.masses
    res = pdm(
        phi_E,
        phi_I,
        drive.n_E,
        drive.n_I,
        params,
        n_bins=m.pdm_n_bins,
        v_min_mV=m.pdm_v_min_mV,
        boundary_correction=m.pdm_boundary_correction,
    )
    return Output(
        res.V_mV,
        {
            "V_pop_pdm": np.stack([res.V_E_mV, res.V_I_mV]),
            RATE: np.stack([res.rate_E_Hz, res.rate_I_Hz]),
        },
    )


MODEL = MassModel(
    name="PDM",
    run=run,
    long_name="PDM potential (population density)",
    comment="population-density (Fokker-Planck) model of the conductance-based LIF per "
    "population: threshold, reset, refractoriness and the voltage distribution, driven by "
    "the network's mean conductances (MODEL.md §5.2)",
    colour="tab:red",
    extra={
        "V_pop_pdm": population_potentials("PDM"),
        RATE: Var(
            ("population", "time_ms"),
            "float32",
            "Hz",
            "PDM rate per population",
            comment="r_P: probability flux through the absorbing boundary in the step per "
            "second, the counterpart of the network's A_P = n_P/(N_P dt) (MODEL.md §5.2); NaN "
            "for a population without cells",
        ),
    },
    below=("CBM-R",),
    adds="the voltage distribution",
)
