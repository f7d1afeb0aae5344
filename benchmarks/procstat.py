"""Helpers shared by the benchmark sides (no nmmval import: ``brian2_net.py``
and ``nest_net.py`` run in their simulators' own virtual environments)."""


def vm_hwm_bytes() -> int:
    """Peak resident set size of this process (VmHWM), bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def parse_cells(items: list[str]) -> list[tuple[float, float]]:
    """Cells ``"P:LAM"`` (connection probability, excitatory fraction) as (p, λ) pairs."""
    cells = []
    for item in items:
        p, sep, lam = item.partition(":")
        if not sep:
            raise ValueError(f"cell {item!r}: expected P:LAM, e.g. 0.5:0.9")
        cells.append((float(p), float(lam)))
    return cells
