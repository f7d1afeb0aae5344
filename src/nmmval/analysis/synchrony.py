"""Spike-contrast synchrony (Ciba et al. 2018) of all N spike trains (MODEL.md §6).

:func:`spike_contrast` reproduces ``elephant.spike_train_synchrony.spike_contrast``
(Elephant 1.x) to the last bit, including its conventions:

- the window is closed: spikes with ``t_start <= t <= t_stop`` are used;
- ``isi_min`` is the smallest inter-spike interval of any train in the window,
  the smallest bin is ``max(isi_min/2, min_bin)``, the largest half the window;
- the window is widened by ``isi_min`` on both sides and cut into edges
  ``numpy.arange(t_start - isi_min, t_stop + isi_min + bin/2, bin/2)``; spikes
  are counted in ``numpy.histogram`` bins (half-open except the last, closed)
  and two neighbouring half-bins make one (half-overlapping) bin;
- bin sizes start at the largest and shrink by ``shrink`` while they are not
  below the smallest;
- silent trains count in N.

The histograms of all trains are never built. For each bin size the pooled
counts θ_k come from the time-sorted spikes by bisection at the half-bin
edges, which gives Σ θ_k and Σ |θ_{k+1} − θ_k|. The remaining sum Σ n_k θ_k,
n_k the number of distinct trains in bin k, is taken train by train as what
the train misses: an active train adds Σ θ_k over all bins minus θ_k over
the bins without one of its spikes, and such bins lie before its first
spike, after its last, or inside an inter-spike gap longer than the bin.
A train therefore costs its long gaps, not its spikes times the bin sizes;
all counts are integers, so the result is the same bits in any order.
Trains run in parallel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange


@njit(cache=True)
def _group_by_train(times_ms, ids, n_trains):
    """Counting sort of spike times by train id, keeping the time order within each train.

    Returns the grouped times and the trains' offsets: train j's spikes are
    ``[train_start[j], train_start[j + 1])``.
    """
    train_start = np.zeros(n_trains + 1, dtype=np.int64)
    for i in range(ids.shape[0]):
        train_start[ids[i] + 1] += 1
    for j in range(n_trains):
        train_start[j + 1] += train_start[j]
    fill = train_start[:-1].copy()
    grouped_ms = np.empty_like(times_ms)
    for i in range(ids.shape[0]):
        grouped_ms[fill[ids[i]]] = times_ms[i]
        fill[ids[i]] += 1
    return grouped_ms, train_start


@njit(cache=True)
def _isi_min(times_ms, train_start):
    """Smallest difference between consecutive spikes of the same train (inf if none)."""
    best = np.inf
    for j in range(train_start.shape[0] - 1):
        for i in range(train_start[j] + 1, train_start[j + 1]):
            d = times_ms[i] - times_ms[i - 1]
            if d < best:
                best = d
    return best


@njit(cache=True)
def _half_bin(t, edges):
    """The half-bin h of a time t in [edges[0], edges[-1]]: edges[h] <= t < edges[h + 1],
    the last half-bin closed (as ``numpy.histogram``)."""
    n_half = edges.shape[0] - 1
    if t >= edges[n_half]:
        return n_half - 1
    h = min(max(int((t - edges[0]) / (edges[n_half] - edges[0]) * n_half), 0), n_half - 1)
    while edges[h] > t:
        h -= 1
    while edges[h + 1] <= t:
        h += 1
    return h


@njit(cache=True)
def _range_sum(cum, a, b):
    """Σ θ_k for k in [a, b] from the cumulative sums ``cum`` (0 if the range is empty)."""
    if b < a:
        return 0
    return cum[b + 1] - cum[a]


@njit(cache=True, parallel=True)
def _missed_sums(times_ms, train_start, edges_ms, offsets, cum_theta, bin_ms, n_blocks):
    """Per bin size b: the trains with a spike in its range, and Σ θ_k over their silent bins.

    ``edges_ms[offsets[b]:offsets[b + 1]]`` are the half-bin edges of bin size
    ``bin_ms[b]`` (decreasing), ``cum_theta[offsets[b] - b:offsets[b + 1] - b]``
    the cumulative sums of its pooled counts θ_k of the overlapping bins k
    (half-bins k and k + 1). A train is active in bin k if one of its spikes
    lies in half-bin k or k + 1; between consecutive spikes in half-bins h < h'
    it is silent in bins h + 1 ... h' − 2, which needs a gap longer than the
    bin (so only those gaps are visited, with a slack of 1e-6 for the rounding
    of the edges). Spikes must be grouped by train (``train_start``) and
    time-sorted within each. Trains run in ``n_blocks`` blocks, each with its
    own sums (integers: the same result for any block count).

    Returns
    -------
    n_active : numpy.ndarray of int64, shape (n_sizes,)
    missed : numpy.ndarray of int64, shape (n_sizes,)
    """
    n_trains = train_start.shape[0] - 1
    n_sizes = offsets.shape[0] - 1
    n_active = np.zeros((n_blocks, n_sizes), dtype=np.int64)
    missed = np.zeros((n_blocks, n_sizes), dtype=np.int64)
    for block in prange(n_blocks):
        for j in range(block * n_trains // n_blocks, (block + 1) * n_trains // n_blocks):
            for b in range(n_sizes):
                edges = edges_ms[offsets[b] : offsets[b + 1]]
                cum = cum_theta[offsets[b] - b : offsets[b + 1] - b - 1]
                n_bins = edges.shape[0] - 2
                lo = train_start[j]
                hi = train_start[j + 1]
                while lo < hi and times_ms[lo] < edges[0]:
                    lo += 1
                while hi > lo and times_ms[hi - 1] > edges[n_bins + 1]:
                    hi -= 1
                if lo == hi:
                    continue
                n_active[block, b] += 1
                h_first = _half_bin(times_ms[lo], edges)
                h_last = _half_bin(times_ms[hi - 1], edges)
                missed[block, b] += _range_sum(cum, 0, h_first - 2)
                missed[block, b] += _range_sum(cum, h_last + 1, n_bins - 1)
            # the gaps: a gap longer than bin b is longer than every smaller bin too
            for i in range(train_start[j] + 1, train_start[j + 1]):
                gap_ms = (times_ms[i] - times_ms[i - 1]) * (1.0 + 1e-6)
                b = n_sizes - 1
                while b >= 0 and bin_ms[b] < gap_ms:
                    edges = edges_ms[offsets[b] : offsets[b + 1]]
                    if times_ms[i - 1] >= edges[0] and times_ms[i] <= edges[edges.shape[0] - 1]:
                        cum = cum_theta[offsets[b] - b : offsets[b + 1] - b - 1]
                        h = _half_bin(times_ms[i - 1], edges)
                        h_next = _half_bin(times_ms[i], edges)
                        missed[block, b] += _range_sum(cum, h + 1, h_next - 2)
                    b -= 1
    return n_active.sum(axis=0), missed.sum(axis=0)


def spike_contrast(
    spike_times_ms: np.ndarray,
    neuron_ids: np.ndarray,
    n_neurons: int,
    t_start_ms: float,
    t_stop_ms: float,
    min_bin_ms: float = 10.0,
    shrink: float = 0.9,
) -> float:
    """Spike-contrast synchrony of N spike trains, as Elephant's ``spike_contrast``.

    For every bin size Δ (from half the window down to
    ``max(ISI_min/2, min_bin)``, shrinking by ``shrink``) the pooled spike
    counts θ_k and active-train counts n_k of half-overlapping bins give
    ``contrast = Σ|θ_{k+1} - θ_k| / (2·#spikes)`` and
    ``active = (Σ n_k θ_k / Σ θ_k - 1)/(N - 1)``; the synchrony is the largest
    ``contrast·active`` over Δ (Ciba et al. 2018). See the module docstring
    for the boundary and bin-edge conventions.

    Parameters
    ----------
    spike_times_ms : array_like of float, shape (n_spikes,)
        Spike times (ms), any order.
    neuron_ids : array_like of int, shape (n_spikes,)
        Train (neuron) of each spike, in ``[0, n_neurons)``.
    n_neurons : int
        Number of trains N, silent ones included (N >= 2).
    t_start_ms, t_stop_ms : float
        Analysis window (ms); spikes with ``t_start <= t <= t_stop`` count.
    min_bin_ms : float, optional
        Lower bound of the smallest bin size (ms).
    shrink : float, optional
        Bin-size shrink factor, in (0, 1).

    Returns
    -------
    float
        Synchrony in [0, 1]; NaN when no train has two spikes in the window
        (Elephant raises ``ValueError`` there).

    Raises
    ------
    ValueError
        If ``n_neurons < 2``, ``shrink`` is not in (0, 1), an id is out of
        range, the arrays differ in length, or the window is shorter than two
        smallest bins (Elephant fails there too).
    """
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"shrink: {shrink!r} is not in (0, 1)")
    if n_neurons < 2:
        raise ValueError(f"n_neurons: {n_neurons!r}, Spike-contrast needs at least 2 trains")
    times_ms = np.asarray(spike_times_ms, dtype=np.float64).ravel()
    ids = np.asarray(neuron_ids).ravel()
    if times_ms.shape != ids.shape:
        raise ValueError(
            f"spike_times_ms and neuron_ids differ in length ({times_ms.size} != {ids.size})"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= n_neurons):
        raise ValueError(f"neuron_ids: values outside [0, {n_neurons}) (n_neurons)")
    t_start_ms = float(t_start_ms)
    t_stop_ms = float(t_stop_ms)

    if np.any(times_ms[1:] < times_ms[:-1]):
        order = np.argsort(times_ms, kind="stable")
        times_ms, ids = times_ms[order], ids[order]
    window = slice(
        np.searchsorted(times_ms, t_start_ms, side="left"),
        np.searchsorted(times_ms, t_stop_ms, side="right"),
    )
    times_ms = times_ms[window]
    ids = ids[window].astype(np.int64, copy=False)
    grouped_ms, train_start = _group_by_train(times_ms, ids, n_neurons)

    isi_min_ms = _isi_min(grouped_ms, train_start)
    if not math.isfinite(isi_min_ms):
        return math.nan
    bin_min_ms = max(isi_min_ms / 2, min_bin_ms)
    bin_max_ms = (t_stop_ms - t_start_ms) / 2
    if bin_max_ms < bin_min_ms:
        raise ValueError(
            f"window [{t_start_ms}, {t_stop_ms}] ms is shorter than two smallest bins "
            f"({bin_min_ms} ms)"
        )
    lo_ms = t_start_ms - isi_min_ms
    hi_ms = t_stop_ms + isi_min_ms

    bins_ms, edge_sets, cum_sets, sums = [], [], [], []
    bin_ms = bin_max_ms
    while bin_ms >= bin_min_ms:
        step_ms = bin_ms / 2
        edges = np.arange(lo_ms, hi_ms + step_ms, step_ms)
        # pooled spikes per half-bin (numpy.histogram's bins: half-open, the last closed)
        below = np.searchsorted(times_ms, edges, side="left")
        below[-1] = np.searchsorted(times_ms, edges[-1], side="right")
        half = np.diff(below)
        theta = half[:-1] + half[1:]
        bins_ms.append(bin_ms)
        edge_sets.append(edges)
        cum_sets.append(np.concatenate(([0], np.cumsum(theta))))
        sums.append((theta.sum(), np.abs(np.diff(theta)).sum()))  # Σ θ_k, Σ |θ_{k+1} − θ_k|
        bin_ms *= shrink
    offsets = np.zeros(len(edge_sets) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([e.size for e in edge_sets])
    n_active, missed = _missed_sums(
        grouped_ms,
        train_start,
        np.concatenate(edge_sets),
        offsets,
        np.concatenate(cum_sets),
        np.array(bins_ms),
        max(1, min(get_num_threads(), n_neurons)),
    )
    total, contrast_sum = np.array(sums, dtype=np.int64).T
    weighted = n_active * total - missed

    n_spikes = times_ms.size
    active = (weighted / total - 1) / (n_neurons - 1)
    contrast = contrast_sum / (2 * n_spikes)
    return float(np.max(contrast * active))
