"""Test-only fault injection: a run SIGKILLed at a point the test names.

The kill-and-resume tests start ``snakemake`` in a session of its own with
``NMMVAL_TEST_KILL=POINT:TOKEN`` in its environment. The first job that
reaches ``POINT`` creates the file ``TOKEN``, holding its process group, and
SIGKILLs that group: Snakemake and every job die at once and Snakemake's lock
stays behind, as when a user kills the run. A job of the same group that
reaches the point while the signal is on its way kills the group too, so no
job gets past the point; a later run (another group) finds the token and goes
on: the point fires once. The points:

``block=K``
    ``nmmval simulate``, after the K-th block of steps (K = 1, 2, ...).
``written=NAME``, ``renamed=NAME``
    :func:`nmmval.store.write_dataset` of a file named ``NAME``
    (``network.nc``, ``masses.nc``, ``compare.nc``, ``cube.nc``): the
    temporary file written, before it is renamed; the file renamed into
    place, before its job ends (Snakemake then finds it incomplete).

Without the variable :func:`reached` returns at once: one look-up in the
environment.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

#: the environment variable naming the point and the token file
VARIABLE = "NMMVAL_TEST_KILL"


def reached(name: str, value: object) -> None:
    """Pass the point ``name=value``: SIGKILL the process group if it is the one named.

    Parameters
    ----------
    name : str
        Kind of point: ``"block"``, ``"written"`` or ``"renamed"``.
    value : object
        Which one, e.g. the block number or the file name; compared as text.

    Raises
    ------
    RuntimeError
        The variable is set without a token file (not ``POINT:TOKEN``).
    """
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    point, _, token = spec.partition(":")
    if not token:
        raise RuntimeError(f"{VARIABLE}={spec!r}: expected POINT:TOKEN_FILE")
    if point != f"{name}={value}":
        return
    group = str(os.getpgrp())
    mine = Path(f"{token}.{os.getpid()}")
    mine.write_text(group)
    try:  # atomic and exclusive: the token appears with its content, once
        os.link(mine, token)
    except FileExistsError:
        pass
    finally:
        mine.unlink()
    if Path(token).read_text() == group:
        os.killpg(0, signal.SIGKILL)
