"""Provenance recorded with every version: the code and library versions that made it."""

from __future__ import annotations

import importlib
import platform
import subprocess
from pathlib import Path

from core.config import PROJECT_ROOT


def environment_info() -> dict:
    """Code and library versions recorded with every version."""
    # Module versions, not distribution names: TensorFlow ships as tensorflow,
    # tensorflow-cpu or tensorflow-macos, all importing as ``tensorflow``.
    libraries = {}
    for module in ("tensorflow", "keras", "numpy", "PIL", "ai_edge_litert"):
        try:
            libraries[module] = getattr(importlib.import_module(module), "__version__", None)
        except ImportError:
            libraries[module] = None
    return {
        "git_commit": _git_commit(PROJECT_ROOT),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": libraries,
    }


def _git_commit(root: Path) -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")
