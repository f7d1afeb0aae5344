"""What a mass model is: its input, its output and its registry entry (MODEL.md §5).

Every model is driven open-loop by one recording of the network, on the
network's time grid, and returns V(t) in mV (plus, optionally, further
traces such as a predicted rate). The signature is the same for all::

    def run(drive: Drive, params: Params) -> Output
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from nmmval.config import Params
from nmmval.datasets import Var

#: synapse types of the recorded input, in the order the kernels use
SYNAPSE_TYPES = ("E", "I", "ext")


class Drive(NamedTuple):
    """One recording of the network, as the mass models read it (MODEL.md §4).

    The neuron and network constants are not repeated here: every model
    reads them from the ``params`` it is run with (the network's own).

    Attributes
    ----------
    phi : mapping of str to numpy.ndarray
        ``{"E": φ_E, "I": φ_I, "ext": φ_ext}``: spike arrivals per neuron in
        each step (dimensionless), one value per step; Φ_σ = φ_σ/dt (1/ms).
    dt_ms : float
        Time step of the recording (ms).
    Vbar_mV : float
        The network's time-mean potential V̄ over [T0, T) (mV); the Freeman
        models start from it.
    phi_pop : numpy.ndarray of float64, shape (3, 2, n_steps), optional
        φ_σ^P: type-σ arrivals (σ = E, I, ext) on the cells of population
        P (E, I) in each step divided by N_P (spikes per neuron per step);
        zero for an empty population. The N-weighted mean over P is φ_σ.
        None if the recording has no per-population arrivals.
    spikes_pop : numpy.ndarray of int64, shape (2, n_steps), optional
        n_P: spikes of the E and of the I cells in each step; the network's
        population rate is A_P = n_P/(N_P·dt).
    n_E, n_I : int
        Population sizes N_E = round(λN) and N_I = N − N_E.
    fit : mapping of str to numpy.ndarray, optional
        The cell's fitted parameters of each fitted model, by model name
        (:mod:`nmmval.models.fitted`, MODEL.md §5.3); None if not fitted.
    """

    phi: Mapping[str, np.ndarray]
    dt_ms: float
    Vbar_mV: float
    phi_pop: np.ndarray | None = None
    spikes_pop: np.ndarray | None = None
    n_E: int = 0
    n_I: int = 0
    fit: Mapping[str, np.ndarray] | None = None

    def populations(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """φ_σ^E and φ_σ^I, each of shape (3, n_steps), rows σ = E, I, ext.

        Raises
        ------
        ValueError
            If the drive has no per-population recordings (``model`` names
            the model that needs them).
        """
        if self.phi_pop is None or self.spikes_pop is None:
            raise ValueError(
                f"{model}: the drive has no per-population arrivals and spike counts "
                "(phi_pop, spikes_pop; network.nc's arrivals_pop, spikes_pop)"
            )
        return self.phi_pop[:, 0], self.phi_pop[:, 1]


class Output(NamedTuple):
    """What a mass model returns.

    Attributes
    ----------
    V_mV : numpy.ndarray of float64, shape (n_steps,)
        The model's potential at every step (mV).
    extra : mapping of str to numpy.ndarray
        Further traces on the same grid, keyed by their masses.nc variable
        names, each declared in the model's :attr:`MassModel.extra`.
    """

    V_mV: np.ndarray
    extra: Mapping[str, np.ndarray] = MappingProxyType({})


@dataclass(frozen=True)
class MassModel:
    """A registered mass model.

    Attributes
    ----------
    name : str
        Its label in the ``model`` and ``mass`` coordinates ("CFM"); its
        potential is the masses.nc variable ``V_<name in lower case>``.
    run : callable
        ``run(drive: Drive, params: Params) -> Output``.
    long_name : str
        Short label of its potential (at most
        :data:`nmmval.datasets.LONG_NAME_MAX` characters; figures show it).
    comment : str
        One sentence on the model, with its equation.
    colour : str
        Matplotlib colour of its traces.
    extra : mapping of str to nmmval.datasets.Var
        Layout of the extra traces it returns (masses.nc variables whose
        last dimension is ``time_ms``, e.g. ``("population", "time_ms")``).
    fitted : bool
        Its parameters are fitted per cell on the first half of the analysis
        window (``Drive.fit``, MODEL.md §5.3): it is judged on the held-out half.
    below : tuple of str
        The models one rung below it on the ladder (MODEL.md §5.2, §5.3): the
        registered models that drop what it keeps. Empty for a model at the
        foot of the ladder.
    adds : str
        What it keeps that the models ``below`` drop ("reset and
        refractoriness"): the term whose absence its adequacy where they fail
        points to. Empty if ``below`` is.
    """

    name: str
    run: Callable[[Drive, Params], Output]
    long_name: str
    comment: str
    colour: str
    extra: Mapping[str, Var] = field(default_factory=dict)
    fitted: bool = False
    below: tuple[str, ...] = ()
    adds: str = ""

    @property
    def variable(self) -> str:
        """Its potential's variable in masses.nc: ``V_cfm`` for "CFM", ``V_cbm_r`` for "CBM-R"."""
        return f"V_{self.name.lower().replace('-', '_')}"
