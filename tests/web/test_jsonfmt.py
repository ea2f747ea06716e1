"""The plan documents' JSON writer against the standard library's own encoder."""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from servefit.web.data import SiteData
from servefit.web.jsonfmt import dumps_indented


class _Colour(enum.StrEnum):
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from([_Colour.RED, _Level.HIGH, Path("/x/y")])
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2, default=str)


def test_keys_json_converts_are_left_to_json() -> None:
    for value in ({1: "a"}, {"k": {2.5: None, True: 1}}, [{None: []}]):
        assert dumps_indented(value) == json.dumps(value, indent=2, default=str)
    assert dumps_indented({"n": math.nan, "i": -math.inf}) == '{\n  "n": NaN,\n  "i": -Infinity\n}'


def test_plans_of_the_catalog(site: SiteData) -> None:
    model = site.models[0]
    for target in site.targets[:40]:
        plan = site.plan(model.id, model.published_quants[0], target.id).to_dict()
        assert dumps_indented(plan) == json.dumps(plan, indent=2, sort_keys=False, default=str)
