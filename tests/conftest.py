"""Shared fixtures: synthetic GGUF models (tests/synth.py), written once per test session."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import synth

SynthFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def synth_model(tmp_path_factory: pytest.TempPathFactory) -> SynthFactory:
    """``synth_model(arch, **overrides) -> Path``: a small model of that architecture, cached per session.

    Files are shared between tests: treat them as read-only (copy before mutating).
    """
    root = tmp_path_factory.mktemp("synth")
    cache: dict[tuple[str, tuple[tuple[str, Any], ...]], Path] = {}

    def make(arch: str, **overrides: Any) -> Path:
        key = (arch, tuple(sorted((k, repr(v)) for k, v in overrides.items())))
        if key not in cache:
            folder = root / f"m{len(cache)}"
            folder.mkdir()
            cache[key] = synth.make_model(folder / f"{arch}.gguf", arch, **overrides)
        return cache[key]

    return make
