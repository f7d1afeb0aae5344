"""Process measurements shared by the two benchmark sides (no nmmval import:
``brian2_net.py`` runs in Brian2's own virtual environment)."""


def vm_hwm_bytes() -> int:
    """Peak resident set size of this process (VmHWM), bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1
