"""The one gap rule (``app.storage.gaps.find_gaps``), table-driven: spans, open bounds, duplicates, step mismatch."""

from __future__ import annotations

import pytest

from app.storage.gaps import Gap, find_gaps

STEP = 100


@pytest.mark.parametrize(
    ("open_times_ms", "start_ms", "end_ms", "expected"),
    [
        pytest.param([], None, None, [], id="empty, no span: nothing is known to be missing"),
        pytest.param([], 0, 500, [Gap(0, 5)], id="empty span: all of it"),
        pytest.param([], 0, None, [], id="empty, open end: nothing"),
        pytest.param([0, 100, 200, 300], None, None, [], id="no gap"),
        pytest.param([0, 100, 200, 300], 0, 400, [], id="no gap, full span"),
        pytest.param([300, 400], 0, 500, [Gap(0, 3)], id="gap at the start of the span"),
        pytest.param([0, 100, 400, 500], None, None, [Gap(200, 2)], id="gap between"),
        pytest.param([0, 200, 300, 600], None, None, [Gap(100, 1), Gap(400, 2)], id="two gaps between"),
        pytest.param([0, 100], 0, 500, [Gap(200, 3)], id="gap at the end of the span"),
        pytest.param([200], 0, 500, [Gap(0, 2), Gap(300, 2)], id="gaps on both sides"),
        pytest.param([0, 100], 0, 450, [Gap(200, 3)], id="end off the grid: the slots before it"),
        pytest.param([-100, 0, 100, 500, 600], 0, 500, [Gap(200, 3)], id="open times outside the span fill nothing"),
        pytest.param([0, 100, 100, 300], None, None, [Gap(200, 1)], id="duplicates count once"),
        pytest.param([0, 150, 300], 0, 400, [Gap(100, 2)], id="step mismatch: an off-grid time fills no slot"),
        pytest.param([0, 150], None, None, [Gap(100, 1)], id="step mismatch at the open end: slots before it"),
        pytest.param([50, 150], 0, 200, [Gap(0, 2)], id="step mismatch: the whole grid is off"),
        pytest.param([100, 200, 400], 200, None, [Gap(300, 1)], id="start after the first open time"),
    ],
)
def test_find_gaps(open_times_ms: list[int], start_ms: int | None, end_ms: int | None, expected: list[Gap]) -> None:
    assert find_gaps(open_times_ms, step_ms=STEP, start_ms=start_ms, end_ms=end_ms) == expected


@pytest.mark.parametrize(
    ("open_times_ms", "start_ms", "end_ms"),
    [([0, 100, 400], None, None), ([300], 0, 1000), ([], 0, 700), ([0, 500, 900], 0, 1200)],
)
def test_gaps_and_present_times_partition_the_grid(
    open_times_ms: list[int], start_ms: int | None, end_ms: int | None
) -> None:
    gaps = find_gaps(open_times_ms, step_ms=STEP, start_ms=start_ms, end_ms=end_ms)
    missing = {gap.first_missing_ms + i * STEP for gap in gaps for i in range(gap.missing)}
    first = open_times_ms[0] if start_ms is None else start_ms
    stop = open_times_ms[-1] + 1 if end_ms is None else end_ms
    assert missing | set(open_times_ms) == set(range(first, stop, STEP)) and not missing & set(open_times_ms)


def test_a_non_positive_step_is_refused() -> None:
    with pytest.raises(ValueError, match="step_ms must be positive"):
        find_gaps([0, 100], step_ms=0)
