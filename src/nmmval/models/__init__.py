"""The registry of neural mass models (MODEL.md §5).

A model is one module of this package with one function of the common
signature ``run(drive: Drive, params: Params) -> Output`` and a
:class:`MassModel` entry, and one :func:`register` line below. Everything
downstream iterates over :func:`registered`: masses.nc gets its potential
``V_<name>`` (and its declared extra traces), compare.nc and the cube a row
in the ``model`` and ``mass`` coordinates, the figures a panel or a trace.
A model with ``fitted=True`` also gets its parameters fitted per cell
(:mod:`nmmval.models.fitted`: the workflow's ``fit`` rule writes fit.nc).
A model's ``below`` and ``adds`` place it on the ladder (MODEL.md §5.2): the
models one rung below and what it keeps that they drop; :func:`steps` lists
the rungs, which the results' ladder tables read.
"""

from __future__ import annotations

from nmmval.datasets import LIF, NETWORK
from nmmval.models import cbm, cfm, fitted, fokker_planck, mfm
from nmmval.models.base import SYNAPSE_TYPES, Drive, MassModel, Output

__all__ = [
    "SYNAPSE_TYPES",
    "Drive",
    "MassModel",
    "Output",
    "fitted_names",
    "names",
    "register",
    "registered",
    "steps",
    "unregister",
]

_REGISTRY: dict[str, MassModel] = {}


def register(model: MassModel) -> MassModel:
    """Add a model to the registry (after those already there).

    Raises
    ------
    ValueError
        If its name is taken (or is "LIF"), one of its masses.nc variables is
        another model's or the network's, a model it names as ``below`` is not
        registered before it, or it names models ``below`` without saying what
        it ``adds`` (or the reverse).
    """
    if model.name in _REGISTRY or model.name == LIF:
        raise ValueError(f"mass model {model.name!r} is already registered")
    missing = [name for name in model.below if name not in _REGISTRY]
    if missing:
        raise ValueError(f"mass model {model.name!r}: below={missing} not registered before it")
    if bool(model.below) != bool(model.adds):
        raise ValueError(f"mass model {model.name!r}: give both below and adds, or neither")
    taken = {v for m in _REGISTRY.values() for v in (m.variable, *m.extra)} | set(NETWORK)
    clash = taken & {model.variable, *model.extra}
    if clash:
        raise ValueError(f"mass model {model.name!r}: variable(s) {sorted(clash)} already used")
    _REGISTRY[model.name] = model
    return model


def unregister(name: str) -> None:
    """Remove a model from the registry (e.g. a test's own model)."""
    del _REGISTRY[name]


def registered() -> tuple[MassModel, ...]:
    """The registered models, in registration order."""
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    """Names of the registered models: the ``mass`` coordinate."""
    return tuple(_REGISTRY)


def fitted_names() -> tuple[str, ...]:
    """Names of the registered fitted models (MODEL.md §5.3): the ``fitted`` coordinate."""
    return tuple(name for name, m in _REGISTRY.items() if m.fitted)


register(cfm.MODEL)
register(mfm.MODEL)
register(cbm.CBM)
register(cbm.CBM_R)
register(fokker_planck.MODEL)
register(fitted.CFM_FIT)
register(fitted.MFM_FIT)


def steps() -> tuple[tuple[str, str, str], ...]:
    """The ladder's steps (MODEL.md §5.2, §5.3): ``(lower, upper, what upper adds)`` for every
    registered model and each model it names as ``below``, in registration order."""
    return tuple((low, m.name, m.adds) for m in _REGISTRY.values() for low in m.below)
