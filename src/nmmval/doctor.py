"""``nmmval doctor``: check what a Slurm run of the workflow needs, one line per item.

Each item is ``ok``, ``warn`` (the run works, but worse than it could) or
``fail`` (the run stops or hangs), with what was found and, unless ``ok``,
how to fix it. Run it where ``snakemake --profile slurm`` will run, in the
environment it will run with: the jobs inherit that environment
(``sbatch --export=ALL``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numba
import yaml
from snakemake.cli import get_appdirs, get_profile_dir

from nmmval.profiles import profiles_dir
from nmmval.sim.threads import available_cpus

PLUGIN = "snakemake_executor_plugin_slurm"
PROFILE = "slurm"
# file systems of one machine's own disks and memory: a cache there is not
# seen by the other nodes
LOCAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "f2fs", "apfs"}


@dataclass(frozen=True)
class Check:
    """The result of one item: ``status`` is ``"ok"``, ``"warn"`` or ``"fail"``."""

    status: str
    item: str
    found: str
    fix: str = ""

    def line(self) -> str:
        """One line: status, item, what was found and, if any, the fix."""
        text = f"{self.status:<4}  {self.item}: {self.found}"
        return f"{text}; fix: {self.fix}" if self.fix else text


def check_plugin() -> Check:
    """The Slurm executor plugin of Snakemake is importable."""
    item = "Slurm executor plugin"
    if importlib.util.find_spec(PLUGIN) is None:
        return Check(
            "fail",
            item,
            f"{PLUGIN} not importable by {sys.executable}",
            "pip install snakemake-executor-plugin-slurm (or pip install 'nmmval[slurm]')",
        )
    try:
        where = f"version {importlib.metadata.version('snakemake-executor-plugin-slurm')}"
    except importlib.metadata.PackageNotFoundError:
        where = "importable"
    return Check("ok", item, f"{PLUGIN} {where}")


def _profile_settings(config_file: Path) -> dict:
    with open(config_file) as fh:
        return yaml.safe_load(fh) or {}


def check_profile() -> Check:
    """The profile ``snakemake --profile slurm`` picks, and that it runs jobs on Slurm."""
    item = f"profile for --profile {PROFILE}"
    found = get_profile_dir(PROFILE)
    if found is None:
        dirs = get_appdirs()
        return Check(
            "fail",
            item,
            f"no folder {PROFILE} in {Path.cwd()}, {dirs.user_config_dir} or "
            f"{dirs.site_config_dir}",
            f"nmmval profile install {PROFILE} (or, from the repository root, "
            f"--profile profiles/{PROFILE})",
        )
    config_file = found[1]
    executor = _profile_settings(config_file).get("executor")
    if executor != "slurm":
        how = "locally" if executor is None else f"with executor {executor!r}"
        return Check(
            "warn",
            item,
            f"{config_file} runs jobs {how}, not on Slurm",
            f"nmmval profile install {PROFILE} --force (replaces that profile)",
        )
    shipped = profiles_dir() / PROFILE / config_file.name
    same = shipped.is_file() and shipped.read_bytes() == config_file.read_bytes()
    note = "" if same or not shipped.is_file() else f" (differs from {shipped}: edited or older)"
    return Check("ok", item, f"{config_file}{note}")


def check_workflow_profile() -> Check:
    """The workflow profile Snakemake ≥ 8 also reads, ./profiles/default, and what it overrides.

    Snakemake reads it after ``--profile``'s, so its keys win.
    """
    item = "workflow profile"
    folder = Path.cwd() / "profiles" / "default"
    found = get_profile_dir(str(folder)) if folder.is_dir() else None
    if found is None:
        return Check("ok", item, f"none in {folder}: only --profile's settings apply")
    config_file = found[1]
    slurm = get_profile_dir(PROFILE)
    if slurm is None:
        return Check("ok", item, f"{config_file} is read too, after --profile's")
    keys = set(_profile_settings(config_file)) & set(_profile_settings(slurm[1]))
    if not keys:
        return Check("ok", item, f"{config_file} is read too; it sets no key of the slurm profile")
    return Check(
        "warn",
        item,
        f"{config_file} is read too and overrides the slurm profile's {', '.join(sorted(keys))}",
        f"snakemake --profile {PROFILE} --workflow-profile none",
    )


def check_command(name: str) -> Check:
    """A Slurm command is on PATH."""
    path = shutil.which(name)
    if path is None:
        return Check(
            "fail",
            name,
            "not on PATH",
            "run on a login node of the cluster (or load its Slurm module, e.g. module load slurm)",
        )
    return Check("ok", name, path)


def _file_system(path: Path) -> str:
    """The type of the file system ``path`` is on (from /proc/mounts; "" if unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    best, fs_type = "", ""
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fs_type = point, fields[2]
    return fs_type


def _first_existing(path: Path) -> Path:
    """``path`` or, if it does not exist, its nearest parent that does."""
    while not path.exists():
        path = path.parent
    return path


def _writable(folder: Path) -> str:
    """Why files cannot be made in ``folder`` (or its first existing parent); "" if they can."""
    existing = _first_existing(folder)
    if not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"cannot write in {existing} ({exc.strerror})"
    return ""


def check_numba_cache() -> Check:
    """NUMBA_CACHE_DIR (or the workflow's default for it) is writable and shared by the nodes."""
    item = "NUMBA_CACHE_DIR"
    value = os.environ.get("NUMBA_CACHE_DIR", "")
    # unset, the workflow sets it for its jobs (workflow/rules/common.smk)
    folder = Path(value or Path.home() / ".cache" / "nmmval" / "numba").expanduser()
    said = str(folder) if value else f"unset; the workflow's jobs use {folder}"
    why = _writable(folder)
    if why:
        return Check(
            "fail",
            item,
            f"{said}: {why}",
            "export NUMBA_CACHE_DIR=<a writable folder on a file system every node mounts>",
        )
    fs_type = _file_system(_first_existing(folder))
    if fs_type in LOCAL_FS:
        return Check(
            "warn",
            item,
            f"{said}, writable, on a local file system ({fs_type}): on a cluster every node "
            "would compile the kernels again",
            "export NUMBA_CACHE_DIR=<a folder on a shared file system, e.g. in $HOME>",
        )
    on = f" ({fs_type})" if fs_type else ""
    shared = "on a cluster it must be on a file system every node mounts"
    return Check("ok", item, f"{said}, writable{on}; {shared}")


def _threading_layer() -> str:
    """The threading layer Numba loads in this environment (it launches Numba's threads)."""
    numba.get_num_threads()  # loads the layer
    return numba.threading_layer()


def check_threading_layer() -> Check:
    """Numba's threading layer gives each part of the kernel a thread (omp or workqueue)."""
    item = "Numba threading layer"
    fix = "export NUMBA_THREADING_LAYER=omp (or workqueue)"
    try:
        layer = _threading_layer()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("fail", item, f"none could be loaded ({first})", fix)
    if layer not in ("omp", "workqueue"):
        return Check(
            "fail",
            item,
            f"{layer}: the simulation kernel's parts wait for each other and need a thread "
            "each, which tbb does not give (nmmval simulate refuses to start)",
            fix,
        )
    return Check("ok", item, layer)


def check_cores() -> Check:
    """The CPUs this process may use (affinity mask, cgroup quota, SLURM_CPUS_PER_TASK)."""
    item = "cores"
    n = available_cpus()
    found = (
        f"{n} available to this process (affinity, cgroup quota, SLURM_CPUS_PER_TASK) of "
        f"{os.cpu_count()} on the machine; Numba at most {numba.config.NUMBA_NUM_THREADS} threads"
    )
    if n < 2:
        return Check(
            "warn",
            item,
            found + "; nmmval simulate here runs on one thread",
            "a Slurm job gets the profile's cpus_per_task (simulate: 2); "
            "for runs by hand ask for more cores",
        )
    return Check("ok", item, found)


def run_checks() -> list[Check]:
    """Every check, in the order :func:`report` prints them."""
    return [
        check_plugin(),
        check_profile(),
        check_workflow_profile(),
        check_command("sbatch"),
        check_command("sacct"),
        check_numba_cache(),
        check_threading_layer(),
        check_cores(),
    ]


def report(checks: list[Check]) -> int:
    """Print one line per check to stdout; 1 if any failed, else 0."""
    for check in checks:
        print(check.line(), flush=True)
    return 1 if any(c.status == "fail" for c in checks) else 0
