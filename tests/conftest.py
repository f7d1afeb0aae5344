"""Shared fixtures: configs of the repository and small variants of them."""

from pathlib import Path

import pytest

from nmmval import config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return ROOT


@pytest.fixture(scope="session")
def quick_params():
    """Params of the default (quick) config."""
    return config.load(ROOT / "config" / "config.yaml")


def small_params(**overrides):
    """The quick config with ``section.key=value`` overrides (a small, fast network)."""
    base = [
        "network.N=400",
        "simulation.T_ms=500",
        "simulation.T0_ms=100",
    ]
    extra = [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
    return config.load(ROOT / "config" / "config.yaml", base + extra)
