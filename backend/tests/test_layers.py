"""The dependency rules of docs/architecture.md, checked on the source: who may import what.

The allowed imports come from the table in docs/architecture.md ("may import"), so the documented layout and the
code cannot drift apart; a few standard-library modules are forbidden on top (``analysis`` does no I/O).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import APP_DIR, REPO_ROOT

APP = APP_DIR
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\| `app/(?P<part>[\w.]+)/?` \| .* \| (?P<imports>[^|]*) \|$", re.MULTILINE)
NO_IO = {"socket", "urllib", "http", "ssl", "asyncio", "subprocess", "sqlite3"}  # analysis computes, never reads


def allowed_imports() -> dict[str, tuple[set[str], set[str]]]:
    """Part of app (``api`` or ``config.py``) -> (app modules, libraries) it may import, from the table."""
    table: dict[str, tuple[set[str], set[str]]] = {}
    for match in ROW.finditer(ARCHITECTURE.read_text()):
        internal, _, libraries = match["imports"].partition(";")
        modules = set(re.findall(r"`(\w+)`", internal))
        table[match["part"]] = (modules, {name.strip() for name in libraries.split(",") if name.strip()})
    return table


def _part_of(path: Path) -> str:
    relative = path.relative_to(APP)
    return relative.parts[0] if len(relative.parts) > 1 else relative.name


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def violations(part: str, path: Path, table: dict[str, tuple[set[str], set[str]]]) -> Iterator[str]:
    """Imports of ``path`` (a module of ``part``) that the table does not allow."""
    modules, libraries = table[part]
    own = part.removesuffix(".py")
    for name in _imports(path):
        top, _, rest = name.partition(".")
        if top == "app":
            target = rest.partition(".")[0]
            if target and target != own and target not in modules:
                yield f"{path.name} imports {name}"
        elif top not in sys.stdlib_module_names and top != "__future__" and top not in libraries:
            yield f"{path.name} imports {name}"


def test_every_part_of_the_app_is_in_the_table() -> None:
    parts = {_part_of(path) for path in APP.rglob("*.py") if path.name != "__init__.py" or path.parent != APP}
    assert parts <= set(allowed_imports()), sorted(parts - set(allowed_imports()))


@pytest.mark.parametrize("part", sorted(allowed_imports()))
def test_part_imports_only_what_the_table_allows(part: str) -> None:
    table = allowed_imports()
    paths = [APP / part] if part.endswith(".py") else sorted((APP / part).rglob("*.py"))
    offenders = [v for path in paths for v in violations(part, path, table)]
    assert not offenders, offenders


def test_analysis_does_no_io() -> None:
    offenders = [
        f"{path.relative_to(APP)} imports {name}"
        for path in (APP / "analysis").rglob("*.py")
        for name in _imports(path)
        if name.partition(".")[0] in NO_IO
    ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("part", "source", "allowed"),
    [
        ("analysis", "import ccxt.async_support as ccxt\n", False),
        ("analysis", "from app.storage import db\n", False),
        ("api", "import numpy as np\n", False),
        ("api", "from app.evaluate import walk\n", False),
        ("api", "from app.storage.reader import SnapshotReader\n", True),
        ("domain.py", "from app.config import Settings\n", False),
        ("exchange", "import json\nfrom app.exchange.source import MarketSource\n", True),
    ],
)
def test_the_checker_catches_a_violation(part: str, source: str, allowed: bool, tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(source)
    found = list(violations(part, module, allowed_imports()))
    assert (not found) is allowed, found
