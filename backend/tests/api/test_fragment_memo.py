"""``renderers.FragmentMemo``: each key's part is built once per run, and an exchange's parts are bounded in count
and in bytes (a key can carry a client's own value, such as ``min_score``)."""

from __future__ import annotations

from functools import partial

import orjson
import pytest

from app.api.renderers import FragmentMemo
from app.domain import Snapshot
from tests.support.snapshots import build_snapshot


@pytest.fixture(scope="module")
def runs() -> tuple[Snapshot, Snapshot]:
    """Two runs of one exchange."""
    return build_snapshot(run_id="run-1"), build_snapshot(run_id="run-2")


@pytest.mark.parametrize(
    ("max_entries", "max_bytes", "held"),
    [
        (512, 10**6, [12, 34, 66, 66]),  # '"x…"' is its length + 2 bytes; the last get is the first key again
        (512, 40, [12, 34, 32, 12]),  # the third would pass 40 bytes: all dropped first; so would the first key again
        (512, 25, [12, 22, 22, 12]),  # the third (32 bytes) alone is larger than 25: built, never kept
        (2, 10**6, [12, 34, 32, 44]),  # the third would be a third entry: all dropped first; the first key is rebuilt
    ],
)
def test_parts_are_built_once_and_bounded(
    runs: tuple[Snapshot, Snapshot], max_entries: int, max_bytes: int, held: list[int]
) -> None:
    memo = FragmentMemo(max_entries=max_entries, max_bytes=max_bytes)
    built: list[int] = []

    def build(size: int) -> str:
        built.append(size)
        return "x" * size

    seen = []
    for key, size in [("a", 10), ("b", 20), ("c", 30), ("a", 10)]:
        fragment = memo.get(runs[0], key, partial(build, size))
        assert orjson.dumps(fragment) == b'"' + b"x" * size + b'"'
        seen.append(memo.held_bytes(runs[0].exchange))
    assert seen == held
    assert built == ([10, 20, 30] if held[-1] == 66 else [10, 20, 30, 10])


def test_a_new_run_starts_empty(runs: tuple[Snapshot, Snapshot]) -> None:
    memo = FragmentMemo()
    memo.get(runs[0], "a", lambda: "x" * 10)
    assert memo.held_bytes(runs[0].exchange) == 12
    memo.get(runs[1], "b", lambda: "y")
    assert memo.held_bytes(runs[1].exchange) == 3
