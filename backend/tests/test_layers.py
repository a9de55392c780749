"""The dependency rules of docs/architecture.md, checked on the source: who may import what."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import APP_DIR

# package (folder or module under app/) -> top-level names it must never import
FORBIDDEN: dict[str, set[str]] = {
    "analysis": {
        "ccxt",
        "sqlalchemy",
        "redis",
        "fastapi",
        "apscheduler",
        "app.exchange",
        "app.storage",
        "app.api",
        "app.worker",
        "requests",
        "httpx",
        "httpx2",
        "socket",
        "urllib",
        "aiohttp",
    },
    "api": {"pandas", "numpy", "ccxt", "app.analysis", "app.exchange", "app.worker", "apscheduler"},
    "storage": {"ccxt", "pandas", "numpy", "fastapi", "app.analysis", "app.exchange", "app.api", "app.worker"},
    "exchange": {"sqlalchemy", "redis", "fastapi", "app.storage", "app.api", "app.worker", "app.analysis"},
    "domain.py": {"ccxt", "sqlalchemy", "redis", "fastapi", "pandas", "numpy", "pydantic", "app"},
}
CCXT_ALLOWED = "exchange"


def _modules(target: str) -> Iterator[Path]:
    path = APP_DIR / target
    yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _violates(name: str, forbidden: set[str]) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_its_import_rules(package: str) -> None:
    offenders = [
        f"{path.relative_to(APP_DIR)} imports {name}"
        for path in _modules(package)
        for name in _imports(path)
        if _violates(name, FORBIDDEN[package])
    ]
    assert not offenders, offenders


def test_only_the_exchange_package_imports_ccxt() -> None:
    offenders = [
        str(path.relative_to(APP_DIR))
        for path in APP_DIR.rglob("*.py")
        if path.relative_to(APP_DIR).parts[0] != CCXT_ALLOWED and any(_violates(n, {"ccxt"}) for n in _imports(path))
    ]
    assert not offenders, offenders


def test_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import ccxt.async_support as ccxt\nfrom app.storage import db\n")
    names = list(_imports(bad))
    assert _violates(names[0], {"ccxt"})
    assert _violates(names[1], FORBIDDEN["analysis"])
