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

The histograms of all trains are never built: for each bin size one pass over
the spikes, sorted by (neuron, time), counts the spikes per half-bin and the
distinct active trains per overlapping bin. Bin sizes run in parallel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _isi_min(times_ms, ids):
    """Smallest difference between consecutive spikes of the same train (inf if none)."""
    best = np.inf
    for i in range(1, times_ms.shape[0]):
        if ids[i] == ids[i - 1]:
            d = times_ms[i] - times_ms[i - 1]
            if d < best:
                best = d
    return best


@njit(cache=True)
def _group_by_train(times_ms, ids, n_trains):
    """Counting sort of spikes by train id, keeping the time order within each train."""
    start = np.zeros(n_trains + 1, dtype=np.int64)
    for i in range(ids.shape[0]):
        start[ids[i] + 1] += 1
    for j in range(n_trains):
        start[j + 1] += start[j]
    grouped_ms = np.empty_like(times_ms)
    grouped_ids = np.empty_like(ids)
    for i in range(ids.shape[0]):
        j = start[ids[i]]
        grouped_ms[j] = times_ms[i]
        grouped_ids[j] = ids[i]
        start[ids[i]] = j + 1
    return grouped_ms, grouped_ids


@njit(cache=True, parallel=True)
def _bin_sums(times_ms, ids, edges_ms, offsets, out):
    """For each bin size b, write Σ n_k θ_k, Σ θ_k and Σ |θ_{k+1} - θ_k| to ``out[b]``.

    ``edges_ms[offsets[b]:offsets[b + 1]]`` are the half-bin edges of bin size b.
    θ_k is the number of spikes and n_k the number of distinct trains in the
    overlapping bin k = half-bins k and k + 1. Spikes must be sorted by (id, time).
    """
    n_spikes = times_ms.shape[0]
    for b in prange(offsets.shape[0] - 1):
        edges = edges_ms[offsets[b] : offsets[b + 1]]
        n_edges = edges.shape[0]
        n_half = n_edges - 1
        n_bins = n_half - 1
        first = edges[0]
        last = edges[n_edges - 1]
        step = (last - first) / n_half
        half_counts = np.zeros(n_half, dtype=np.int64)
        active = np.zeros(max(n_bins, 0), dtype=np.int64)
        prev_id = -1
        last_bin = -1
        for i in range(n_spikes):
            t = times_ms[i]
            if t < first or t > last:
                continue
            if t == last:
                h = n_half - 1
            else:
                h = min(max(int((t - first) / step), 0), n_half - 1)
                while edges[h] > t:
                    h -= 1
                while edges[h + 1] <= t:
                    h += 1
            half_counts[h] += 1
            if ids[i] != prev_id:
                prev_id = ids[i]
                last_bin = -1
            # half-bin h lies in the overlapping bins h - 1 and h
            for k in range(h - 1, h + 1):
                if 0 <= k < n_bins and k > last_bin:
                    active[k] += 1
                    last_bin = k
        weighted = 0
        total = 0
        contrast = 0
        previous = 0
        for k in range(n_bins):
            theta = half_counts[k] + half_counts[k + 1]
            weighted += active[k] * theta
            total += theta
            if k > 0:
                contrast += abs(theta - previous)
            previous = theta
        out[b, 0] = weighted
        out[b, 1] = total
        out[b, 2] = contrast


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

    keep = (times_ms >= t_start_ms) & (times_ms <= t_stop_ms)
    times_ms = times_ms[keep]
    ids = ids[keep].astype(np.int64)
    if np.any(times_ms[1:] < times_ms[:-1]):
        order = np.argsort(times_ms, kind="stable")
        times_ms, ids = times_ms[order], ids[order]
    times_ms, ids = _group_by_train(times_ms, ids, n_neurons)

    isi_min_ms = _isi_min(times_ms, ids)
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

    edge_sets = []
    bin_ms = bin_max_ms
    while bin_ms >= bin_min_ms:
        step_ms = bin_ms / 2
        edge_sets.append(np.arange(lo_ms, hi_ms + step_ms, step_ms))
        bin_ms *= shrink
    offsets = np.zeros(len(edge_sets) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([e.size for e in edge_sets])
    sums = np.zeros((len(edge_sets), 3), dtype=np.int64)
    _bin_sums(times_ms, ids, np.concatenate(edge_sets), offsets, sums)

    n_spikes = times_ms.size
    active = (sums[:, 0] / sums[:, 1] - 1) / (n_neurons - 1)
    contrast = sums[:, 2] / (2 * n_spikes)
    return float(np.max(contrast * active))
