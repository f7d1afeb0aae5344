"""Install the repository's Snakemake profiles for the current user.

The profiles live in the repository's ``profiles/`` folder, next to the
``Snakefile``: ``profiles/default``, the local run, which Snakemake reads by
itself as the workflow profile, and ``profiles/slurm``, which ``snakemake
--profile profiles/slurm`` uses from the repository root. Installing one copies it
into Snakemake's per-user profile folder, ``$XDG_CONFIG_HOME/snakemake/<name>``
(``~/.config/snakemake/<name>`` when ``XDG_CONFIG_HOME`` is unset), so that
``snakemake --profile <name>`` finds it from any directory.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

__all__ = ["ProfileError", "available_profiles", "install_profile", "profiles_dir", "user_root"]


class ProfileError(RuntimeError):
    """A profile cannot be found or installed; the message is one line."""


def profiles_dir() -> Path:
    """The repository's ``profiles/`` folder (the package is installed from ``src/``)."""
    return Path(__file__).resolve().parents[2] / "profiles"


def available_profiles() -> list[str]:
    """Names of the profiles shipped in the repository, sorted."""
    root = profiles_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("config*.yaml")))


def user_root() -> Path:
    """Snakemake's per-user profile folder: ``$XDG_CONFIG_HOME/snakemake``."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "snakemake"


def _same_tree(a: Path, b: Path) -> bool:
    """True if folders ``a`` and ``b`` hold the same files with the same bytes."""
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def install_profile(name: str, dest_root: Path | None = None, force: bool = False) -> Path:
    """Copy the repository's Snakemake profile ``name`` into the user's profile folder.

    Parameters
    ----------
    name
        A folder of the repository's ``profiles/``: ``"slurm"`` or ``"default"``.
    dest_root
        Where profiles are installed; default ``$XDG_CONFIG_HOME/snakemake``, i.e.
        ``~/.config/snakemake``, where ``snakemake --profile <name>`` looks.
    force
        Replace an existing, different profile of that name. Without it such a
        profile is left alone and :class:`ProfileError` is raised.

    Returns
    -------
    Path
        The installed profile folder, ``<dest_root>/<name>``. Installing over an
        identical copy changes nothing and returns the same path.

    Raises
    ------
    ProfileError
        One line naming the problem: no such profile in the repository (or no
        ``profiles/`` folder at all, e.g. a non-editable install), or a different
        profile already installed under that name and ``force`` not given.
    """
    root = profiles_dir()
    if not root.is_dir():
        raise ProfileError(
            f"no profiles/ folder at {root}: install nmmval from its repository "
            "(pip install -e .) to install profiles"
        )
    src = root / name
    if not name or "/" in name or name.startswith(".") or not src.is_dir():
        known = ", ".join(available_profiles()) or "none"
        raise ProfileError(f"no profile {name!r} in {root} (available: {known})")
    dest = (Path(dest_root) if dest_root is not None else user_root()) / name
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    if dest.exists() or dest.is_symlink():
        if dest.is_dir() and not dest.is_symlink() and _same_tree(src, dest):
            return dest
        if not force:
            raise ProfileError(
                f"a different profile already exists at {dest}; use force to replace it"
            )
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        else:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, ignore=ignore)
    os.replace(tmp, dest)
    return dest
