"""Plain-dict views of a published ``Snapshot``, in the original Dantaro Central light API field names.

Domain objects are rendered by one generic ``legacy_view`` from ``legacy_shapes.SHAPES`` (renames, legacy-only keys,
key order), planned once per type; a new domain field is served without editing this module. Views are built once
per run and key (``RunMemo``, ``HorizonMemo``, ``FragmentMemo``), never per request on the hot path. Recommendation
lists and symbol lists are rendered per served horizon (``app.api.horizons``): the legacy fields follow it and the
list is in its rank order.

Invariants: every payload carries the run's freshness (``generated_at``, ``as_of`` = close time of the last
candle used, ``age_seconds`` = seconds since the run was generated, ``stale`` = age beyond
``Settings.stale_after_s``, ``data_source``) and the run's own fields listed in ``legacy_shapes.RUN_FIELDS``
(``tickers_source``); datetimes stay ``datetime`` (UTC) and are rendered by orjson; scores are in [0, 1], price
changes in percent, volumes in the quote currency.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from operator import attrgetter
from types import UnionType
from typing import Any, Generic, TypeVar, Union, get_args, get_origin, get_type_hints

import orjson

from app.api.byte_budget import ByteBudgetMemo
from app.api.horizons import at_horizon, model_at, served_horizons
from app.api.legacy_shapes import RUN_FIELDS, SHAPES, SYMBOL_ITEM, Key, Projection, legacy_keys, projection_keys
from app.api.responses import dump_json
from app.domain import MarketStatus, Recommendation, Snapshot, SupportLevels

T = TypeVar("T")
View = dict[str, Any]
Part = Callable[[Any, datetime], Any]  # (domain value, the run's generated_at) -> served value
_PLANS: dict[type, _Plan] = {}  # type -> how to render it, built on first use


def data_age_s(snapshot: Snapshot, now: datetime) -> float:
    """Seconds since ``snapshot`` was generated, floored at 0 (``stale`` compares this, unrounded)."""
    return max(0.0, (now - snapshot.generated_at).total_seconds())


def served_age(age_s: float) -> float:
    """``age_s`` as the payloads serve it (``age_seconds``, ``data_age_seconds``): milliseconds."""
    return round(age_s, 3)


def freshness_view(snapshot: Snapshot, *, data_source: str, stale_after_s: float, now: datetime) -> View:
    """The provenance fields every data payload carries."""
    age_s = data_age_s(snapshot, now)
    stale = age_s > stale_after_s
    return freshness_fields(snapshot, data_source=data_source, age_seconds=served_age(age_s), stale=stale)


def freshness_fields(snapshot: Snapshot, *, data_source: str, age_seconds: float, stale: bool) -> View:
    """``freshness_view`` for an age already computed (``BodyTemplate`` passes its placeholder)."""
    return {
        "cache_timestamp": snapshot.generated_at,
        "generated_at": snapshot.generated_at,
        "data_source": data_source,
        "exchange": snapshot.exchange,
        "run_id": snapshot.run_id,
        "as_of": snapshot.data_as_of,
        "age_seconds": age_seconds,
        "stale": stale,
        **{name: _run_value(getattr(snapshot, name)) for name in RUN_FIELDS},
    }


def _run_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def legacy_view(item: object, *, updated_at: datetime) -> View:
    """A domain object with a ``legacy_shapes.SHAPES`` entry, in the light API's keys and order."""
    cls: type = type(item)
    plan = _PLANS.get(cls) or _PLANS.setdefault(cls, _build_plan(cls, legacy_keys(cls)))
    return plan.render(item, updated_at)


def ranked_at(snapshot: Snapshot, horizon: str) -> list[Recommendation]:
    """The run's recommendations seen at ``horizon`` (a served one), best rank at that horizon first."""
    model = snapshot.models.get(horizon)
    seen = [at_horizon(rec, horizon, model=model) for rec in snapshot.recommendations]
    return sorted(seen, key=lambda rec: rec.rank)


def recommendations_view(snapshot: Snapshot, horizon: str | None = None) -> list[View]:
    """All of a run's recommendations at ``horizon`` (default: the run's), best rank first."""
    chosen = horizon or served_horizons(snapshot).default
    return [legacy_view(rec, updated_at=snapshot.generated_at) for rec in ranked_at(snapshot, chosen)]


def model_view(snapshot: Snapshot, horizon: str) -> View | None:
    """How ``horizon``'s scores and labels were made (non-zero weights only); None for a run without models."""
    model = model_at(snapshot, horizon)
    return None if model is None else legacy_view(model, updated_at=snapshot.generated_at)


def support_levels_view(levels: SupportLevels, *, updated_at: datetime) -> View:
    """A symbol's three support and resistance tiers plus every level found."""
    return legacy_view(levels, updated_at=updated_at)


def support_levels_fragment(fragments: FragmentMemo, snapshot: Snapshot, symbol: str) -> orjson.Fragment:
    """The serialised levels view of ``symbol`` (one the run has levels for), rendered once per run."""
    return fragments.get(
        snapshot,
        ("levels", symbol),
        lambda: support_levels_view(snapshot.levels[symbol], updated_at=snapshot.generated_at),
    )


def market_view(market: MarketStatus, *, updated_at: datetime) -> View:
    """The exchange's market as a whole."""
    return legacy_view(market, updated_at=updated_at)


def system_health_view(snapshot: Snapshot, freshness: View, *, stale_after_s: float, cache_status: str) -> View:
    """What the API measured about the data it serves (``degraded`` while the shared cache is failing)."""
    status = "stale" if freshness["stale"] else "degraded" if cache_status == "down" else "healthy"
    return {
        "status": status,
        "cache_status": cache_status,
        "data_age_seconds": freshness["age_seconds"],
        "stale_after_seconds": stale_after_s,
        "stale": freshness["stale"],
        "data_source": freshness["data_source"],
        "run_id": snapshot.run_id,
        "symbols_analysed": len(snapshot.recommendations),
        "symbols_failed": len(snapshot.errors),
    }


def symbols_view(snapshot: Snapshot, horizon: str | None = None) -> list[View]:
    """Every symbol of the run with its last price, score and label at ``horizon`` (default: the run's), best rank
    first."""
    ranked = ranked_at(snapshot, horizon or served_horizons(snapshot).default)
    plan = _projection_plan(SYMBOL_ITEM)
    views = [plan.render(rec, snapshot.generated_at) for rec in ranked]
    for view, rec in zip(views, ranked, strict=True):
        view["has_levels"] = rec.symbol in snapshot.levels
    return views


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to render one type: copy ``template`` (every key in order), fill the domain values, convert, stamp."""

    template: dict[str, None]
    keys: tuple[str, ...]  # legacy keys of the domain fields, in ``template`` order
    values: Callable[[Any], tuple[Any, ...]]  # the item's values for ``keys``
    converted: tuple[tuple[str, Part], ...]  # keys whose value is served converted (enums, nested, pairs)
    run_time: tuple[str, ...]  # keys that carry the run's generated_at

    def render(self, item: object, at: datetime) -> View:
        """``item`` as a view; ``at`` is the run's generated_at."""
        view: View = self.template.copy()
        view.update(zip(self.keys, self.values(item), strict=False))  # same length by construction
        for name, convert in self.converted:
            view[name] = convert(view[name], at)
        for name in self.run_time:
            view[name] = at
        return view


@cache
def _projection_plan(projection: Projection) -> _Plan:
    return _build_plan(projection.source, projection_keys(projection))


def _build_plan(cls: type, keys: tuple[Key, ...]) -> _Plan:
    """How to render ``keys`` of ``cls`` (a type with a ``SHAPES`` entry); built once per type."""
    hints, pairs = get_type_hints(cls), SHAPES[cls].pairs
    fields = [(key.name, key.field) for key in keys if key.field is not None]
    converted = [
        (name, _pair_objects(pairs[field].keys) if field in pairs else _converter(hints[field]))
        for name, field in fields
    ]
    return _Plan(
        template=dict.fromkeys(key.name for key in keys),
        keys=tuple(name for name, _ in fields),
        values=_getter(tuple(field for _, field in fields)),
        converted=tuple((name, convert) for name, convert in converted if convert is not None),
        run_time=tuple(key.name for key in keys if key.extra is not None and key.extra.source == "generated_at"),
    )


def _getter(fields: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(fields) == 1:
        return lambda item: (getattr(item, fields[0]),)
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*fields)
    return getter


def _converter(hint: Any) -> Part | None:
    """How to serve a value of type ``hint`` (None: as it is; orjson renders datetimes, tuples and mappings)."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return lambda value, at: value.value
    if isinstance(hint, type) and hint in SHAPES:
        return lambda value, at: legacy_view(value, updated_at=at)
    args = [arg for arg in get_args(hint) if arg is not type(None)]
    origin = get_origin(hint)
    if origin is Union or origin is UnionType:
        inner = _converter(args[0]) if len(args) == 1 else None
        return None if inner is None else lambda value, at: None if value is None else inner(value, at)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _converter(args[0])
        return None if item is None else lambda value, at: [item(part, at) for part in value]
    if origin is Mapping or origin is dict:
        entry = _converter(args[1])
        return None if entry is None else lambda value, at: {key: entry(part, at) for key, part in value.items()}
    return None


def _pair_objects(keys: tuple[str, str]) -> Part:
    first, second = keys
    return lambda value, at: [{first: one, second: two} for one, two in value]


class RunMemo(Generic[T]):
    """Remembers one value derived from each exchange's current run; rebuilt when the run_id changes."""

    def __init__(self, build: Callable[[Snapshot], T]) -> None:
        self._build = build
        self._entries: dict[str, tuple[str, T]] = {}

    def get(self, snapshot: Snapshot) -> T:
        """The value for ``snapshot``, built once per run."""
        entry = self._entries.get(snapshot.exchange)
        if entry is not None and entry[0] == snapshot.run_id:
            return entry[1]
        value = self._build(snapshot)
        self._entries[snapshot.exchange] = (snapshot.run_id, value)
        return value


class HorizonMemo(Generic[T]):
    """Remembers one value per horizon of each exchange's current run, built on first use; dropped with the run.

    Callers pass served horizon names only, so each run holds at most one value per served horizon.
    """

    def __init__(self, build: Callable[[Snapshot, str], T]) -> None:
        self._build = build
        self._runs: RunMemo[dict[str, T]] = RunMemo(lambda snapshot: {})

    def get(self, snapshot: Snapshot, horizon: str) -> T:
        """The value for ``snapshot`` at ``horizon``, built once per run and horizon."""
        values = self._runs.get(snapshot)
        value = values.get(horizon)
        if value is None:
            value = values[horizon] = self._build(snapshot, horizon)
        return value


MAX_FRAGMENT_BYTES = 4 * 1024 * 1024  # per exchange's run: what requests asked for, serialised


class FragmentMemo:
    """Pre-serialised JSON parts of each exchange's current run (``orjson.Fragment``), keyed by what a request asked.

    The run-derived part of a body is rendered once per run and key; only the per-request fields (freshness, health)
    are serialised each time. Entries are dropped when the exchange's run changes, and all of an exchange's when one
    more would pass ``max_entries`` or ``max_bytes`` (a key can hold a client's own value, such as ``min_score``); a
    part larger than ``max_bytes`` alone is never kept. Keys are not counted in the bytes: they are a few parameters.
    Used from the event loop only.
    """

    def __init__(self, *, max_entries: int = 512, max_bytes: int = MAX_FRAGMENT_BYTES) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._runs: dict[str, tuple[str, ByteBudgetMemo[Hashable, orjson.Fragment]]] = {}

    def get(self, snapshot: Snapshot, key: Hashable, build: Callable[[], object]) -> orjson.Fragment:
        """The serialised ``build()`` for ``key`` in ``snapshot``'s run, built on first use."""
        entry = self._runs.get(snapshot.exchange)
        if entry is None or entry[0] != snapshot.run_id:
            parts = ByteBudgetMemo[Hashable, orjson.Fragment](max_entries=self._max_entries, max_bytes=self._max_bytes)
            entry = self._runs[snapshot.exchange] = (snapshot.run_id, parts)
        parts = entry[1]
        fragment = parts.get(key)
        if fragment is None:
            data = dump_json(build())
            fragment = orjson.Fragment(data)
            parts.keep(key, fragment, size_bytes=len(data))
        return fragment

    def held_bytes(self, exchange: str) -> int:
        """The serialised bytes held for ``exchange``'s current run."""
        entry = self._runs.get(exchange)
        return 0 if entry is None else entry[1].held_bytes


# Two ages no run can have: a body rendered with each must split into the same parts, else one of them occurs in the
# data itself and the body cannot be a template.
_AGE_PLACEHOLDERS = (-7.25e-301, -3.5e-302)


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """A serialised body whose only per-request values are the data's age: the bytes between its occurrences."""

    parts: tuple[bytes, ...]

    @property
    def size_bytes(self) -> int:
        """The bytes the template holds (its body less the ages)."""
        return sum(map(len, self.parts))

    def render(self, age_seconds: float) -> bytes:
        """The body for ``age_seconds`` (already ``served_age``), byte for byte what ``dump_json`` renders."""
        return dump_json(age_seconds).join(self.parts)


def body_template(build: Callable[[float], object]) -> BodyTemplate:
    """The template of ``build(age_seconds)``'s JSON; ValueError when the placeholder ages cannot be told from data."""
    first, second = (dump_json(build(age)).split(dump_json(age)) for age in _AGE_PLACEHOLDERS)
    if first != second:
        raise ValueError("the body contains a placeholder age; it cannot be pre-rendered")
    return BodyTemplate(tuple(first))
