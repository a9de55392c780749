"""``ByteBudgetMemo``: the bounds in count and bytes, replacement, and values larger than the byte bound."""

from __future__ import annotations

import pytest

from app.api.byte_budget import ByteBudgetMemo

# (key, bytes) kept in turn -> (the keys held, the bytes held) after the last
CASES = [
    ([("a", 10), ("b", 20)], ({"a", "b"}, 30)),
    ([("a", 10), ("b", 20), ("c", 30)], ({"a", "b", "c"}, 60)),  # exactly the byte bound: kept
    ([("a", 10), ("b", 20), ("c", 31)], ({"c"}, 31)),  # one byte more: every value dropped first
    ([("a", 10), ("b", 20), ("c", 5), ("d", 5)], ({"d"}, 5)),  # a fourth value passes max_entries=3
    ([("a", 10), ("b", 20), ("a", 40)], ({"a", "b"}, 60)),  # replacing a key frees its old bytes first
    ([("a", 10), ("b", 20), ("a", 61)], ({"b"}, 20)),  # larger than the bound alone: not kept, its old value gone
]


@pytest.mark.parametrize(("kept", "held"), CASES)
def test_what_is_held(kept: list[tuple[str, int]], held: tuple[set[str], int]) -> None:
    memo = ByteBudgetMemo[str, int](max_entries=3, max_bytes=60)
    for key, size_bytes in kept:
        memo.keep(key, size_bytes, size_bytes=size_bytes)
    keys, held_bytes = held
    assert {key for key in "abcd" if memo.get(key) is not None} == keys
    assert memo.held_bytes == held_bytes == sum(memo.get(key) or 0 for key in keys)
