"""Private copies of the source tree that a test may change: the parts a release is made of (``deploy.sh``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.paths import REPO_ROOT

SOURCE_PARTS = ("backend", "deployment", "docs", "monitoring", "migrate.py", "requirements.txt", "pyproject.toml")


def copy_source_tree(target: Path) -> Path:
    """Copy the release's parts of this checkout into ``target`` (created; caches left out); returns ``target``."""
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for part in SOURCE_PARTS:
        origin = REPO_ROOT / part
        if origin.is_dir():
            shutil.copytree(origin, target / part, ignore=ignore)
        elif origin.exists():
            shutil.copy(origin, target / part)
    return target
