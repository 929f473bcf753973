"""Where the system programs the stack runs are (installed by scripts/bootstrap)."""

from __future__ import annotations

import shutil
from pathlib import Path


def system_exe(name: str, package: str) -> str:
    """The path of program `name` (also found in /usr/sbin); RuntimeError naming its package."""
    exe = shutil.which(name) or f"/usr/sbin/{name}"
    if not Path(exe).exists():
        hint = f"Debian package {package}: run scripts/bootstrap"
        raise RuntimeError(f"{name} is not installed ({hint})")
    return exe
