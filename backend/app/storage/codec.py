"""Lossless JSON (orjson) encoding of domain objects for the cache tier, the database's rows and JSON columns.

The domain dataclasses are the only definition of the shape: encoding is orjson's dataclass serialisation (field
names as keys), decoding is one typed decoder, ``decode(cls, data)``, driven by ``dataclasses.fields`` and the
resolved type hints (``typing.get_type_hints``) of ``cls``. Nothing here names a domain field.

Invariants:
- ``decode_snapshot(encode_snapshot(s)) == s`` for every field: enums come back as enums, datetimes as aware
  datetimes with their offset, tuples as tuples (``tuple[X, ...]`` and fixed pairs), nested dataclasses as their
  class, ``Mapping[str, X]`` as dicts, ``X | None`` as None or X.
- Free-form ``Any`` values (``details``, ``analysis_summary``) must hold JSON values (str, numbers, bool, None, lists,
  dicts with str keys); they come back as dicts and lists.
- A key missing from the payload takes the field's default if it has one, else ``ValueError``; unknown keys are
  ignored (a newer writer's extra field does not break an older reader). Database rows decode the same way: a
  column value that is already the field's type (an aware ``datetime``) is accepted as is.
- Never pickle: payloads are plain JSON, safe to read from a shared cache. Malformed payloads (not JSON, another
  ``CODEC_VERSION``, a wrong type, a missing field, an unknown enum value, a naive datetime) raise ``ValueError``
  naming the path of the bad value (e.g. ``Snapshot.recommendations[0].label``).
"""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

import orjson

from app.domain import Snapshot

CODEC_VERSION = 1

T = TypeVar("T")
Decoder = Callable[[Any, str], Any]  # (JSON value, path for messages) -> domain value
_SCALARS: dict[type, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """JSON bytes for domain objects (dataclasses, enums, datetimes, tuples, mappings)."""
    return orjson.dumps(value, default=_default)


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dict, list, str, float, ...), as stored in a JSON column."""
    return orjson.loads(dumps(value))


def to_columns(item: Any, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A dataclass's fields as column values: scalars and datetimes as they are, enums as their value, anything
    else (tuples, mappings, nested dataclasses) as plain JSON for a JSON column."""
    skipped = set(exclude)
    return {
        field.name: _column_value(getattr(item, field.name))
        for field in dataclasses.fields(item)
        if field.name not in skipped
    }


def _column_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | datetime):
        return value
    return to_jsonable(value)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot as versioned JSON bytes."""
    return dumps({"v": CODEC_VERSION, "snapshot": snapshot})


def decode_snapshot(data: bytes) -> Snapshot:
    """The snapshot encoded by ``encode_snapshot``; ``ValueError`` for anything else."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"snapshot payload is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("v") != CODEC_VERSION:
        raise ValueError(f"not a version {CODEC_VERSION} snapshot payload")
    return decode(Snapshot, document.get("snapshot"))


def decode(cls: type[T], data: Any) -> T:
    """A ``cls`` dataclass from its JSON form (or a row mapping with its field names); ``ValueError`` if malformed."""
    decoded: T = _decoder(cast(Hashable, cls))(data, cls.__name__)
    return decoded


def _fail(path: str, expected: str, value: Any) -> ValueError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ValueError(f"{path}: expected {expected}, got {type(value).__name__} {shown}")


@cache
def _decoder(hint: Any) -> Decoder:
    """The decoder for one resolved type hint (built once per hint)."""
    build = _BY_ORIGIN.get(get_origin(hint))
    return _plain_decoder(hint) if build is None else build(get_args(hint))


def _plain_decoder(hint: Any) -> Decoder:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_decoder(hint)
    if hint in _SCALARS:
        return _scalar_decoder(hint)
    if hint is datetime or hint is Any:
        return _datetime if hint is datetime else _any
    raise TypeError(f"the codec cannot decode {hint!r}: add a case to codec._decoder")


@cache
def _field_plan(cls: type) -> tuple[tuple[str, Decoder, bool], ...]:
    """(name, decoder, required) for each field of the dataclass ``cls``."""
    hints = get_type_hints(cls)
    return tuple(
        (
            field.name,
            _decoder(hints[field.name]),
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(cls)
    )


def _dataclass_decoder(cls: type) -> Decoder:
    def decode_dataclass(value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise _fail(path, f"an object for {cls.__name__}", value)
        kwargs: dict[str, Any] = {}
        for name, decoder, required in _field_plan(cls):
            if name in value:
                kwargs[name] = decoder(value[name], f"{path}.{name}")
            elif required:
                raise ValueError(f"{path}.{name}: missing")
        return cls(**kwargs)

    return decode_dataclass


def _optional_decoder(args: tuple[Any, ...]) -> Decoder:
    present = [arg for arg in args if arg is not type(None)]
    if len(present) != 1 or len(args) != 2:
        raise TypeError(f"the codec decodes only X | None unions, not {args!r}")
    inner = _decoder(present[0])
    return lambda value, path: None if value is None else inner(value, path)


def _tuple_decoder(args: tuple[Any, ...]) -> Decoder:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _decoder(args[0])
        return lambda value, path: tuple(item(part, f"{path}[{i}]") for i, part in enumerate(_sequence(value, path)))
    items = [_decoder(arg) for arg in args]

    def decode_fixed(value: Any, path: str) -> tuple[Any, ...]:
        parts = _sequence(value, path)
        if len(parts) != len(items):
            raise _fail(path, f"{len(items)} items", value)
        return tuple(item(part, f"{path}[{i}]") for i, (item, part) in enumerate(zip(items, parts, strict=True)))

    return decode_fixed


def _sequence(value: Any, path: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(path, "an array", value)
    return value


def _mapping_decoder(args: tuple[Any, ...]) -> Decoder:
    if args[0] is not str:
        raise TypeError(f"the codec decodes only mappings with str keys, not {args!r}")
    item = _decoder(args[1])

    def decode_mapping(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise _fail(path, "an object with string keys", value)
        return {key: item(part, f"{path}[{key!r}]") for key, part in value.items()}

    return decode_mapping


def _literal_decoder(args: tuple[Any, ...]) -> Decoder:
    def decode_literal(value: Any, path: str) -> Any:
        if not any(value == arg and type(value) is type(arg) for arg in args):
            raise _fail(path, f"one of {', '.join(map(repr, args))}", value)
        return value

    return decode_literal


def _enum_decoder(cls: type[enum.Enum]) -> Decoder:
    def decode_enum(value: Any, path: str) -> enum.Enum:
        try:
            return cls(value)
        except ValueError:
            raise _fail(path, f"a {cls.__name__} ({', '.join(str(m.value) for m in cls)})", value) from None

    return decode_enum


def _datetime(value: Any, path: str) -> datetime:
    parsed = value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(path, "an ISO 8601 datetime", value) from None
    if not isinstance(parsed, datetime) or parsed.utcoffset() is None:
        raise _fail(path, "an ISO 8601 datetime with an offset", value)
    return parsed


def _scalar_decoder(hint: type) -> Decoder:
    accepted = _SCALARS[hint]

    def decode_scalar(value: Any, path: str) -> Any:
        if not isinstance(value, accepted) or (isinstance(value, bool) and hint is not bool):
            raise _fail(path, hint.__name__, value)
        return hint(value)

    return decode_scalar


def _any(value: Any, path: str) -> Any:
    return value


_BY_ORIGIN: dict[Any, Callable[[tuple[Any, ...]], Decoder]] = {
    Union: _optional_decoder,
    types.UnionType: _optional_decoder,
    tuple: _tuple_decoder,
    dict: _mapping_decoder,
    Mapping: _mapping_decoder,
    Literal: _literal_decoder,
}
