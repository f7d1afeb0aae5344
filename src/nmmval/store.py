"""NetCDF files of nmmval: paths, atomic writes, checked reads.

Every file is NetCDF4 written through xarray (``engine="netcdf4"``) with CF
attributes, to a temporary name in the target folder and then renamed with
:func:`os.replace`, so a killed or failed write never leaves a partial file
under the final name. Every file read is checked against its layout
(:mod:`nmmval.datasets`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from nmmval import datasets, faults

#: one cell's folder below ``results/{run}/cells``; values canonically formatted
CELL_PATTERN = "p~{p}/lam~{lam}/seed~{seed}"


_UMASK = os.umask(0)
os.umask(_UMASK)


class InputError(RuntimeError):
    """A file nmmval needs is missing, unreadable or incomplete."""


class OutputError(RuntimeError):
    """A result could not be written."""


def format_p(x: float) -> str:
    """Canonical text of p or λ in paths: three decimals (``0.050``)."""
    return f"{x:.3f}"


def format_seed(s: int) -> str:
    """Canonical text of a seed index in paths: four digits (``0003``)."""
    return f"{int(s):04d}"


def cell_dir(root: str | Path, p: float, lam: float, seed: int) -> Path:
    """Folder of one cell: ``root/cells/p~0.050/lam~0.800/seed~0003``."""
    return (
        Path(root)
        / "cells"
        / CELL_PATTERN.format(p=format_p(p), lam=format_p(lam), seed=format_seed(seed))
    )


def fit_path(root: str | Path, p: float, lam: float) -> Path:
    """fit.nc of one cell <p, λ>, beside its seeds: ``root/cells/p~0.050/lam~0.800/fit.nc``."""
    return Path(root) / "cells" / f"p~{format_p(p)}" / f"lam~{format_p(lam)}" / "fit.nc"


def _encoding(ds: xr.Dataset) -> dict:
    """How each variable is stored: compressed data, NaN fill values, and labels (``model``,
    ``mass``, ...) as fixed-length character arrays (CF 2.2: no variable-length strings),
    which xarray reads back as strings."""
    enc = {}
    for name, var in ds.data_vars.items():
        if var.ndim == 0:
            continue
        e = {"zlib": True, "complevel": 4, "shuffle": True}
        if var.dtype.kind == "f":  # NaN unless the layout says none (nmmval.datasets.Var.fill)
            e["_FillValue"] = var.encoding.get("_FillValue", np.nan)
        enc[name] = e
    for name, coord in ds.coords.items():
        enc[name] = {"_FillValue": None}
        if coord.dtype.kind in "fiu" and coord.size > 64:
            enc[name].update(zlib=True, complevel=4, shuffle=True)
    for name, var in ds.variables.items():
        if var.dtype.kind in "OU":
            enc.setdefault(name, {})["dtype"] = "S1"
    return enc


_HOST = socket.gethostname().replace("~", "-")


def _temp_prefix(path: Path) -> str:
    """Prefix of the temporary names of ``path``: ``.{name}.{host}~{pid}~``."""
    return f".{path.name}.{_HOST}~{os.getpid()}~"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete temporary files of ``path`` left by killed writers on this host.

    A process killed while writing (SIGKILL, a lost node) cannot remove its
    temporary ``.{name}.{host}~{pid}~XXXXXXXX.tmp.nc``. The next write of the
    same path removes those of this host whose process is gone; files of other
    hosts (a shared file system) and of live processes are left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?P<host>.+)~(?P<pid>\d+)~[^~/]*\.tmp\.nc$")
    removed = []
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp.nc"))
    except OSError:
        return removed
    for tmp in candidates:
        m = pattern.match(tmp.name)
        if not m or m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def check_writable(path: str | Path) -> Path:
    """Fail early, before hours of work, if ``path`` cannot be written.

    Creates the folder and a temporary file next to ``path``, then removes it.

    Raises
    ------
    OutputError
        One line naming the path and the reason (e.g. a read-only folder).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp.nc", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    return path


def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` atomically (temporary file + ``os.replace``).

    The temporary file, ``.{name}.{host}~{pid}~XXXXXXXX.tmp.nc``, lies next to
    ``path``; temporaries of the same path left by killed writers on this host
    are removed first (:func:`remove_stale_temporaries`).

    Raises
    ------
    OutputError
        One line naming the path and the reason (a read-only folder, a full
        disk, ...); nothing is left under ``path`` or the temporary name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp.nc", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=_encoding(ds))
        os.chmod(tmp, 0o666 & ~_UMASK)
        faults.reached("written", path.name)  # test-only kill point (nmmval.faults)
        os.replace(tmp, path)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        if _disk_full(path.parent):
            reason = f"no space left on device: {reason}"
        _discard(tmp)
        raise OutputError(f"{path}: cannot write ({reason})") from None
    faults.reached("renamed", path.name)  # test-only kill point
    return path


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _discard(tmp: str | Path) -> None:
    """Remove a failed temporary file and free its space.

    After a failed write (e.g. a full disk) HDF5 may keep the file open, so
    unlinking alone would not return the space while this process lives;
    truncating first does.
    """
    try:
        os.truncate(tmp, 0)
    except OSError:
        pass
    Path(tmp).unlink(missing_ok=True)


def open_dataset(path: str | Path, kind: str, params=None) -> xr.Dataset:
    """Open a file of the given kind fully into memory, checking it against its layout.

    Parameters
    ----------
    path : path-like
    kind : {"network", "fit", "masses", "compare", "cube"}
    params : nmmval.config.Params, optional
        If given, the file must have been made with its time grid
        (``simulation.dt_ms`` and ``T_ms``).

    Raises
    ------
    InputError
        One line naming the file and what is wrong (missing, not NetCDF,
        truncated, a variable absent or not as :mod:`nmmval.datasets`
        declares, made with another time grid).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: missing {kind} file")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4 raises OSError, RuntimeError, ValueError, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: corrupt {kind} file ({reason})") from None
    # the mass models (Numba, SciPy) only when a file is read: simulate, which only writes,
    # starts without them
    from nmmval import models

    problem = datasets.problems(ds, kind, models.registered())
    if problem:
        raise InputError(f"{path}: {problem}")
    if params is not None:
        _check_grid(ds, path, params)
    return ds


def stored_config(ds: xr.Dataset, path: str | Path = "<dataset>") -> dict:
    """The resolved config a file was made with.

    Raises
    ------
    InputError
        If the file (named ``path``) has no readable ``config`` attribute.
    """
    try:
        return json.loads(ds.attrs["config"])
    except (KeyError, json.JSONDecodeError):
        raise InputError(f"{path}: no readable config attribute") from None


def _check_grid(ds: xr.Dataset, path: Path, params) -> None:
    """Stop with one line unless a file was made with the config's dt_ms and T_ms."""
    sim_file = stored_config(ds, path)["simulation"]
    sim = params.simulation
    if (sim_file["dt_ms"], sim_file["T_ms"]) != (sim.dt_ms, sim.T_ms):
        raise InputError(
            f"{path}: made with dt_ms={sim_file['dt_ms']}, T_ms={sim_file['T_ms']}, "
            f"not the config's dt_ms={sim.dt_ms}, T_ms={sim.T_ms}"
        )
