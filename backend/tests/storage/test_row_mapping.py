"""Every field of a stored domain object has its column (``storage.runs.ROW_MODELS``), of a matching type.

Adding a field to a recommendation, a support-levels row or the market status therefore takes the domain field, the
model column (this test fails without it) and an Alembic migration (``migrate.check`` in test_migrations fails when
the models and the migrations differ); rows convert to and from the domain generically (``test_codec``).
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any, get_args, get_type_hints

import pytest
from sqlalchemy import JSON

from app.domain import Recommendation, Snapshot
from app.storage.models import Base, RecommendationModel
from app.storage.runs import ROW_MODELS, SNAPSHOT_PARTS

SCALARS = (str, int, float, bool, datetime, enum.Enum)  # stored in a typed column; anything else in a JSON one
RUN_KEY = "run_id"  # the column that ties a part's row to its run


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(X, True) for ``X | None``, else (hint, False)."""
    args = get_args(hint)
    if type(None) in args:
        return next(arg for arg in args if arg is not type(None)), True
    return hint, False


def _type_problem(name: str, hint: Any, column_type: Any) -> str | None:
    if not (isinstance(hint, type) and issubclass(hint, SCALARS)):
        return None if isinstance(column_type, JSON) else f"{name} holds {hint} and needs a JSON column"
    stored = str if issubclass(hint, enum.Enum) else hint
    if isinstance(column_type, JSON) or not issubclass(stored, column_type.python_type):
        return f"{name} is a {hint.__name__} stored as {column_type}"
    return None


def column_problems(cls: type, model: type[Base], *, stored_elsewhere: tuple[str, ...] = ()) -> list[str]:
    """What is wrong between the dataclass ``cls`` and the table of ``model`` (empty: every field has its column)."""
    table = model.__table__
    strict_nullability = cls is not Snapshot  # a run row exists before its snapshot fields are known
    problems: list[str] = []
    for field in dataclasses.fields(cls):
        if field.name in stored_elsewhere:
            continue
        name = f"{cls.__name__}.{field.name}"
        column = table.columns.get(field.name)
        if column is None:
            problems.append(f"{name} has no column in {table.name}")
            continue
        hint, optional = _unwrap(get_type_hints(cls)[field.name])
        if (optional or strict_nullability) and column.nullable != optional:
            state = "nullable" if column.nullable else "NOT NULL"
            problems.append(f"{name} is {'optional' if optional else 'required'} but its column is {state}")
        problem = _type_problem(name, hint, column.type)
        if problem:
            problems.append(problem)
    return problems


@pytest.mark.parametrize("cls", list(ROW_MODELS), ids=lambda cls: cls.__name__)
def test_every_field_has_a_column_of_its_type(cls: type) -> None:
    parts = SNAPSHOT_PARTS if cls is Snapshot else ()
    assert column_problems(cls, ROW_MODELS[cls], stored_elsewhere=parts) == []


@pytest.mark.parametrize("cls", [cls for cls in ROW_MODELS if cls is not Snapshot], ids=lambda cls: cls.__name__)
def test_every_column_of_a_part_table_is_a_field(cls: type) -> None:
    columns = {column.key for column in ROW_MODELS[cls].__table__.columns}
    assert columns - {RUN_KEY} == {field.name for field in dataclasses.fields(cls)}


def test_the_snapshot_parts_are_stored_in_tables_of_their_own() -> None:
    hints = get_type_hints(Snapshot)
    for name in SNAPSHOT_PARTS:
        hint = hints[name]
        part = next(arg for arg in (hint, *get_args(hint)) if dataclasses.is_dataclass(arg))
        assert part in ROW_MODELS, f"Snapshot.{name} holds {part}, which has no table"


def test_a_field_without_its_column_is_caught() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Widened(Recommendation):
        conviction: float = 0.0
        note: str | None = None

    assert column_problems(Widened, RecommendationModel) == [
        "Widened.conviction has no column in recommendations",
        "Widened.note has no column in recommendations",
    ]


def test_a_column_of_the_wrong_type_is_caught() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Retyped:
        rank: float  # an Integer column
        details: str  # a JSON column
        label: str | None  # a NOT NULL column

    assert column_problems(Retyped, RecommendationModel) == [
        "Retyped.rank is a float stored as INTEGER",
        "Retyped.details is a str stored as JSON",
        "Retyped.label is optional but its column is NOT NULL",
    ]
