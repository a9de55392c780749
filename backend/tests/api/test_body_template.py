"""``renderers.BodyTemplate``: a pre-rendered body is byte for byte the JSON of the view at every age."""

from __future__ import annotations

import pytest

from app.api.renderers import body_template
from app.api.responses import dump_json


def _view(age_seconds: float) -> dict[str, object]:
    return {"age_seconds": age_seconds, "items": [{"symbol": "BTC", "data_age_seconds": age_seconds}], "n": 3}


@pytest.mark.parametrize(
    "ages",
    [
        (0.0, 0.0, 0.001, 0.001, 0.0),
        (12.5, 12.5, 13.0),
        (0.0, -0.0, 0.0),  # equal as floats, different JSON
        (1e-3, 1000000.0, 1e-3),
    ],
)
def test_every_render_is_the_views_json(ages: tuple[float, ...]) -> None:
    template = body_template(_view)
    assert [template.render(age) for age in ages] == [dump_json(_view(age)) for age in ages]


def test_a_body_with_a_placeholder_age_in_its_data_is_refused() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        body_template(lambda age: {"age_seconds": age, "other": -7.25e-301})


@pytest.mark.parametrize("age", [0.0, 12.5, 1000000.0])
def test_a_templates_size_is_its_body_less_the_ages(age: float) -> None:
    template = body_template(_view)
    ages = 2  # _view writes the age twice
    assert template.size_bytes == len(dump_json(_view(age))) - ages * len(dump_json(age))
