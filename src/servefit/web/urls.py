"""The website's URL scheme: one stable address per page, values file and JSON document.

::

    /models/{model}                                 a model and its quant ladder
    /hardware/{target}                              a target; ids may hold one slash:
                                                    /hardware/scaleway/l4-2-24g
    /deploy/{model}/{quant}/{target}                the catalogue page of one combination:
                                                    /deploy/qwen3-8b/q4_k_m/scaleway/l4-1-24g
    /values/{model}/{quant}/{target}.yaml           Helm values of that page's plan; for a GPU class
                                                    target this is /values/{model}/{quant}/{class}.yaml
                                                    (nvidia-l4-48gb.yaml, cpu.yaml)
    /api/plan?model=&quant=&target=&context=        the Plan as JSON (live server)
    /api/plans/{model}/{quant}/{target}.json        the same JSON at a static address

Model ids and quantization names never contain a slash, so everything after the quantization in
a deploy address is the target id, verbatim: the scheme is unambiguous and the id a user reads in
the address is the id the CLI accepts. Quantization names appear in lower case (``q4_k_m``); the
live server redirects other spellings to the canonical address. A static export writes each page
as ``<address>/index.html``, which every static host serves at ``<address>`` and ``<address>/``.
"""

from __future__ import annotations

import re

__all__ = [
    "ID_RE",
    "api_plan_url",
    "deploy_url",
    "hardware_url",
    "is_valid_id",
    "is_valid_target_id",
    "model_url",
    "quant_slug",
    "values_url",
]

# One path segment of an id: letters, digits and . _ + -, never starting with a dot.
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,119}$")
MAX_TARGET_SEGMENTS = 3


def is_valid_id(text: str) -> bool:
    """A model id or quantization name: one safe path segment (no ``/``, no ``..``)."""
    return bool(ID_RE.match(text)) and ".." not in text


def is_valid_target_id(text: str) -> bool:
    """A target id: one to three safe segments joined by ``/`` (``scaleway/l4-2-24g``)."""
    parts = text.split("/")
    return 0 < len(parts) <= MAX_TARGET_SEGMENTS and all(is_valid_id(p) for p in parts)


def quant_slug(quant: str) -> str:
    """``Q4_K_M`` -> ``q4_k_m``: quantizations appear in lower case in addresses."""
    return quant.lower()


def model_url(model_id: str) -> str:
    return f"/models/{model_id}"


def hardware_url(target_id: str) -> str:
    return f"/hardware/{target_id}"


def deploy_url(model_id: str, quant: str, target_id: str) -> str:
    return f"/deploy/{model_id}/{quant_slug(quant)}/{target_id}"


def values_url(model_id: str, quant: str, target_id: str) -> str:
    """The values of a deploy page: ``/values/qwen3-8b/q4_k_m/nvidia-l4-48gb.yaml``,
    ``/values/qwen3-8b/q4_k_m/scaleway/l4-2-24g.yaml``."""
    return f"/values/{model_id}/{quant_slug(quant)}/{target_id}.yaml"


def api_plan_url(model_id: str, quant: str, target_id: str) -> str:
    """The static JSON address of a plan at the default options."""
    return f"/api/plans/{model_id}/{quant_slug(quant)}/{target_id}.json"
