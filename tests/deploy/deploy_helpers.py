"""Rendering helpers shared by the deployment tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llama-server"
DATA = Path(__file__).parent / "data"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Kubernetes objects of a Helm render (NOTES.txt and empty templates left out)."""
    out: list[dict[str, Any]] = []
    for name, text in sorted(rendered.items()):
        if not name.endswith((".yaml", ".yml")):
            continue
        out.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return out


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]
