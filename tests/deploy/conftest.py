"""Fixtures of the deployment tests: the chart loaded by Helm's engine, the plans, the schemas."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from deploy_helpers import CHART


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def values_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


@pytest.fixture(scope="session", autouse=True)
def _cached_kubernetes_schemas() -> Iterator[None]:
    """kubernetes-validate re-reads its JSON schema files on every call; read each once per session."""
    import kubernetes_validate.utils as utils

    original = utils.schema_contents
    utils.schema_contents = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        utils.schema_contents = original
