"""Progress of a long loop on stderr: a bar on a terminal, plain lines in a log.

On a terminal a :mod:`tqdm` bar shows the fraction done, the rate and the
time left, redrawn in place. Written to a file (a Slurm or Snakemake log),
redrawing would leave hundreds of partial lines, so the same progress is one
line per tenth of the work: ``<label>:  40 % (1.2 s, 1.8 s left)``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib import DummyTqdmFile


class Progress:
    """Report how much of ``total`` units of work is done.

    Parameters
    ----------
    total : int
        Units of work in all (e.g. time steps).
    label : str
        Start of every line and the bar's description.
    stream : file-like, optional
        Where to write; default ``sys.stderr``. A bar if it is a terminal,
        plain lines otherwise.
    every : float
        Fraction of the work between two plain lines.
    unit : str
        Name of one unit of work, for the bar's rate.

    Attributes
    ----------
    log : file-like
        A stream for other messages during the loop (e.g. the thread
        governor's), which prints them above the bar instead of through it.
    """

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        every: float = 0.1,
        unit: str = "step",
    ):
        self.stream = sys.stderr if stream is None else stream
        self.total = max(int(total), 1)
        self.label = label
        self.every = every
        self._next = every
        self._t0 = time.perf_counter()
        self._first = None  # (time, done) of the first update
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        self._bar = (
            tqdm(
                total=self.total,
                desc=label,
                unit=unit,
                unit_scale=True,
                file=self.stream,
                dynamic_ncols=True,
            )
            if is_tty
            else None
        )
        self.log = DummyTqdmFile(self.stream) if is_tty else self.stream

    def update(self, done: int) -> None:
        """Record that ``done`` units (in all, not since the last call) are done."""
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            return
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, done)
        frac = done / self.total
        if frac < self._next - 1e-12:
            return
        elapsed = now - self._t0
        # the rate since the first update: the first one may include a compilation
        t1, done1 = self._first
        if done > done1:
            left = (now - t1) * (self.total - done) / (done - done1)
        else:
            left = elapsed * (1 - frac) / frac
        print(
            f"{self.label}: {100 * frac:3.0f} % ({elapsed:.1f} s, {left:.1f} s left)",
            file=self.stream,
            flush=True,
        )
        # the next tenth after this one, even if a call skipped several
        self._next = (int(frac / self.every + 1e-9) + 1) * self.every

    def close(self) -> None:
        """Finish the bar (its last state stays on the terminal)."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
