"""Rendering helpers shared by the deployment tests."""

from __future__ import annotations

from typing import Any

import yaml


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
