"""The snapshot codec: every field of every snapshot type survives the codec, both caches and both databases, with
its exact type (tuples, enums, nested dataclasses, offsets); malformed payloads are a ValueError naming the path."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, get_args, get_type_hints

import orjson
import pytest

from app.domain import Label, Snapshot, TickersSource
from app.storage.cache import SnapshotCache
from app.storage.codec import decode, decode_snapshot, encode_snapshot
from app.storage.runs import RunRepository
from tests.support.storage import StorageBackend

MakeSnapshot = Callable[..., Snapshot]
T = TypeVar("T")

SEOUL = timezone(timedelta(hours=9))
NEW_YORK = timezone(timedelta(hours=-5))
KOLKATA = timezone(timedelta(hours=5, minutes=30))
# The value an optional field gets in the "every optional present" instances of the sample, by its type.
FILLERS: dict[Any, Any] = {
    float: 1.25,
    int: 3,
    str: "filled",
    bool: True,
    datetime: datetime(2022, 9, 30, 7, tzinfo=KOLKATA),
}


# --- The sample: every field of every snapshot type set, optional fields both None and present -----------------


def _optional_fields(cls: type) -> dict[str, Any]:
    """Field name -> X for every ``X | None`` field of the dataclass ``cls``."""
    optional = {}
    for name, hint in get_type_hints(cls).items():
        args = get_args(hint)
        if type(None) in args:
            optional[name] = next(arg for arg in args if arg is not type(None))
    return optional


def _optionals(item: T, *, present: bool) -> T:
    """``item`` with every optional field None, or (``present``) set to its ``FILLERS`` value (a nested dataclass,
    which has no filler, keeps the factory's)."""
    changes = {
        name: FILLERS.get(hint, getattr(item, name)) if present else None
        for name, hint in _optional_fields(type(item)).items()
    }
    return replace(item, **changes)  # type: ignore[type-var]


def _vary(item: T, *, present: bool) -> T:
    """``_optionals`` applied to ``item`` and to the dataclasses in its tuple fields (Levels in SupportLevels)."""
    changed = _optionals(item, present=present)
    nested = {
        field.name: tuple(_optionals(part, present=present) for part in value)
        for field in dataclasses.fields(changed)  # type: ignore[arg-type]
        if isinstance(value := getattr(changed, field.name), tuple) and value and dataclasses.is_dataclass(value[0])
    }
    return replace(changed, **nested)  # type: ignore[type-var]


@pytest.fixture
def sample(make_snapshot: MakeSnapshot) -> Snapshot:
    """A real-data snapshot with every field set, offsets other than UTC, and optional fields None in one item."""
    base = make_snapshot(run_id="run-every-field")
    recommendations = list(base.recommendations)
    recommendations[0] = _vary(recommendations[0], present=False)
    recommendations[1] = _vary(recommendations[1], present=True)
    (blank_symbol, blank), (full_symbol, full), *others = base.levels.items()
    return replace(
        base,
        generated_at=base.generated_at.astimezone(SEOUL),
        data_as_of=base.data_as_of.astimezone(NEW_YORK),
        recommendations=tuple(recommendations),
        levels={blank_symbol: _vary(blank, present=False), full_symbol: _vary(full, present=True), **dict(others)},
        errors=base.errors or {"LUNA/USDT": "not in the bundled history"},
        tickers_source=TickersSource.CANDLES,
    )


def _instances(value: object, found: dict[type, list[Any]]) -> dict[type, list[Any]]:
    """Every dataclass instance inside ``value``, by type."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found.setdefault(type(value), []).append(value)
        for field in dataclasses.fields(value):
            _instances(getattr(value, field.name), found)
    elif isinstance(value, Mapping):
        for part in value.values():
            _instances(part, found)
    elif isinstance(value, tuple | list):
        for part in value:
            _instances(part, found)
    return found


def _snapshot_types(cls: type, found: set[type]) -> set[type]:
    """Every dataclass type a ``cls`` can hold, read from the type hints."""
    found.add(cls)
    pending = list(get_type_hints(cls).values())
    while pending:
        hint = pending.pop()
        pending.extend(get_args(hint))
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint not in found:
            _snapshot_types(hint, found)
    return found


def _is_set(value: object, field: dataclasses.Field[Any]) -> bool:
    if value is None or (isinstance(value, Sized) and len(value) == 0):
        return False
    if field.default is not dataclasses.MISSING:
        return value != field.default
    return field.default_factory is dataclasses.MISSING or value != field.default_factory()


def _unset_fields(sample: Snapshot) -> list[str]:
    instances = _instances(sample, {})
    problems = [f"no {cls.__name__} in the sample" for cls in _snapshot_types(Snapshot, set()) - set(instances)]
    for cls, items in instances.items():
        for field in dataclasses.fields(cls):
            if not any(_is_set(getattr(item, field.name), field) for item in items):
                problems.append(f"{cls.__name__}.{field.name} is never set to a non-default value")
        for name in _optional_fields(cls):
            if len(items) > 1 and all(getattr(item, name) is not None for item in items):
                problems.append(f"{cls.__name__}.{name} is never None")
    return problems


def assert_identical(decoded: object, original: object, path: str = "snapshot", *, offsets: bool = True) -> None:
    """Equal, with the same types all the way down (tuples, enums, dataclasses) and, with ``offsets``, the same
    UTC offsets (``==`` alone lets a str pass for a StrEnum, a list for a tuple and any offset for a datetime)."""
    assert type(decoded) is type(original), f"{path}: {type(decoded).__name__} is not {type(original).__name__}"
    if dataclasses.is_dataclass(original):
        for field in dataclasses.fields(original):
            name = field.name
            assert_identical(getattr(decoded, name), getattr(original, name), f"{path}.{name}", offsets=offsets)
    elif isinstance(original, Mapping):
        assert isinstance(decoded, Mapping) and decoded.keys() == original.keys(), path
        for key, value in original.items():
            assert_identical(decoded[key], value, f"{path}[{key!r}]", offsets=offsets)
    elif isinstance(original, tuple | list):
        assert isinstance(decoded, tuple | list) and len(decoded) == len(original), path
        for index, (got, value) in enumerate(zip(decoded, original, strict=True)):
            assert_identical(got, value, f"{path}[{index}]", offsets=offsets)
    else:
        assert decoded == original, path
        if offsets and isinstance(original, datetime):
            assert isinstance(decoded, datetime) and decoded.utcoffset() == original.utcoffset(), path


# --- Round trips -------------------------------------------------------------------------------------------------


def test_the_sample_sets_every_field_of_every_snapshot_type(sample: Snapshot) -> None:
    assert _unset_fields(sample) == []


def test_the_coverage_check_catches_a_field_left_at_its_default(sample: Snapshot) -> None:
    market = replace(sample.market, details={})
    assert _unset_fields(replace(sample, market=market)) == ["MarketStatus.details is never set to a non-default value"]


def test_the_identity_check_catches_a_lossy_decode(sample: Snapshot) -> None:
    first, *others = sample.recommendations
    lossy = replace(sample, recommendations=(replace(first, label=first.label.value), *others))
    assert lossy == sample  # a StrEnum equals its value: == alone would not notice
    with pytest.raises(AssertionError, match=r"recommendations\[0\]\.label: str is not Label"):
        assert_identical(lossy, sample)


def test_codec_round_trips_every_field(sample: Snapshot) -> None:
    assert_identical(decode_snapshot(encode_snapshot(sample)), sample)


def test_cache_round_trips_every_field(cache: SnapshotCache, sample: Snapshot) -> None:
    cache.put(sample)
    assert cache.current_run_id(sample.exchange) == sample.run_id
    assert_identical(cache.get(sample.exchange, sample.run_id), sample)


def test_database_round_trips_every_field(backend: StorageBackend, sample: Snapshot) -> None:
    with backend.session_factory.begin() as session:
        RunRepository(session).save_snapshot(sample)
    with backend.session_factory() as session:
        loaded = RunRepository(session).latest_snapshot(exchange=sample.exchange)
    assert loaded == sample
    assert_identical(loaded, sample, offsets=False)  # datetime columns come back in UTC (same instant)


def test_payload_is_plain_versioned_json(sample: Snapshot) -> None:
    payload = encode_snapshot(sample)
    document = orjson.loads(payload)
    assert document["v"] == 1
    assert document["snapshot"]["recommendations"][0]["label"] in {label.value for label in Label}
    assert document["snapshot"]["generated_at"].endswith("+09:00")
    assert not payload.startswith(b"\x80")  # a pickle protocol header


# --- Decoding errors ---------------------------------------------------------------------------------------------

FIRST = object()  # in a path: the first key of the mapping there
DELETE = object()  # as a value: remove the key

MALFORMED = [
    ("wrong type", ["universe_size"], "7", r"^Snapshot\.universe_size: expected int, got str '7'$"),
    ("bool for an int", ["universe_size"], True, r"^Snapshot\.universe_size: expected int, got bool"),
    ("null for a float", ["recommendations", 0, "current_price"], None, r"recommendations\[0\]\.current_price: exp"),
    ("missing field", ["recommendations", 2, "rank"], DELETE, r"^Snapshot\.recommendations\[2\]\.rank: missing$"),
    ("missing nested object", ["market"], DELETE, r"^Snapshot\.market: missing$"),
    ("bad enum value", ["recommendations", 1, "label"], "MAYBE", r"recommendations\[1\]\.label: expected a Label"),
    ("naive datetime", ["data_as_of"], "2022-10-01T00:00:00", r"data_as_of: expected an ISO 8601 datetime with an"),
    ("not a datetime", ["generated_at"], "yesterday", r"generated_at: expected an ISO 8601 datetime, got str"),
    ("pair of three", ["market", "top_gainers", 0], ["BTC/USDT", 1.0, 2.0], r"top_gainers\[0\]: expected 2 items"),
    ("string for a tuple", ["levels", FIRST, "levels", 0, "sources"], "swing", r"\.sources: expected an array"),
    ("array for a mapping", ["errors"], [], r"^Snapshot\.errors: expected an object with string keys"),
    ("number in a str mapping", ["errors", FIRST], 3, r"^Snapshot\.errors\['.+'\]: expected str, got int"),
    (
        "text for a nested dataclass",
        ["levels", FIRST, "levels", 0],
        "low",
        r"levels\[0\]: expected an object for Level",
    ),
    ("null snapshot", [], None, r"^Snapshot: expected an object for Snapshot"),
]


def _mutated(sample: Snapshot, path: list[Any], value: Any) -> bytes:
    document = orjson.loads(encode_snapshot(sample))
    parent, steps = document, ["snapshot", *path]
    for step in steps[:-1]:
        parent = parent[next(iter(parent)) if step is FIRST else step]
    last = next(iter(parent)) if steps[-1] is FIRST else steps[-1]
    if value is DELETE:
        del parent[last]
    else:
        parent[last] = value
    return orjson.dumps(document)


@pytest.mark.parametrize(("path", "value", "message"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_payloads_are_a_value_error_naming_the_path(
    sample: Snapshot, path: list[Any], value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        decode_snapshot(_mutated(sample, path, value))


@pytest.mark.parametrize("payload", [b"[]", b"not json", b'{"v": 2, "snapshot": {}}', b'{"v": 1, "snapshot": {}}'])
def test_foreign_payloads_are_rejected(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_snapshot(payload)


def test_a_missing_field_with_a_default_takes_it_and_unknown_keys_are_ignored(sample: Snapshot) -> None:
    without_details = decode_snapshot(_mutated(sample, ["recommendations", 0, "details"], DELETE))
    assert without_details.recommendations[0].details == {}
    with_extra = decode_snapshot(_mutated(sample, ["market", "added_by_a_newer_worker"], 1))
    assert with_extra == sample


def test_a_payload_from_before_the_served_pivots_and_profile_decodes_without_them(sample: Snapshot) -> None:
    symbol = next(name for name, levels in sample.levels.items() if levels.pivots is not None)
    document = orjson.loads(encode_snapshot(sample))
    for name in ("pivots", "volume_profile"):
        del document["snapshot"]["levels"][symbol][name]
    decoded = decode_snapshot(orjson.dumps(document))
    assert decoded.levels[symbol].pivots is None and decoded.levels[symbol].volume_profile is None
    assert decoded.levels[symbol].levels == sample.levels[symbol].levels


def test_a_type_the_codec_does_not_know_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Tagged:
        tags: set[str]

    with pytest.raises(TypeError, match="cannot decode"):
        decode(Tagged, {"tags": ["a"]})
