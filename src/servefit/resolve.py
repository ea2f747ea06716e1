"""One entry point from whatever the user typed to a ModelSpec.

``resolve_model(source, quant)`` accepts, in this order:

* a path to a Hugging Face ``config.json`` (or a folder holding one) with a quantization: the
  spec llama.cpp's converter and quantizer would produce (``servefit.inventory.spec_from_config``);
* any GGUF source ``servefit.gguf.read_model_spec`` reads: a path, the first part of a split
  file, an http(s) URL, ``hf://owner/repo/file.gguf`` or ``owner/repo:QUANT`` (``owner/repo``
  with ``quant`` given becomes ``owner/repo:QUANT``);
* a catalog model id with a quantization (``servefit.catalog.models.model_spec``).

The three back ends are imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from servefit.errors import ModelError, OptionsError, SourceError
from servefit.model import ModelSpec
from servefit.plan import Plan

__all__ = ["resolve_model", "with_source_warnings"]

_MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _config_path(source: str) -> Path | None:
    path = Path(source).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path / "config.json"
    if path.suffix.lower() == ".json" and path.is_file():
        return path
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise SourceError(f"{path}: too large for a config.json ({path.stat().st_size} bytes)", path=str(path))
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})", path=str(path)) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: not a JSON config ({exc})", path=str(path)) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: a config.json must hold a JSON object")
    return data


def _needs_quant(what: str, quant: str | None) -> str:
    if not quant:
        raise OptionsError(f"{what}: give a quantization with --quant (for example Q4_K_M)", option="quant")
    return quant.strip()


def resolve_model(source: str, quant: str | None = None) -> ModelSpec:
    """The ModelSpec a source names: a config.json path, a GGUF source, or a catalog id (see module doc)."""
    text = source.strip()
    if not text:
        raise SourceError("empty model source")
    config_path = _config_path(text)
    if config_path is not None:
        from servefit.inventory import spec_from_config

        config = _read_config(config_path)
        q = _needs_quant(str(config_path), quant)
        name = str(config.get("_name_or_path") or config_path.parent.name)
        return spec_from_config(config, q, name=name, source=str(config_path))

    from servefit.sources import looks_like_gguf_source

    if not looks_like_gguf_source(text) and quant and text.count("/") == 1 and not Path(text).exists():
        candidate = f"{text}:{quant.strip()}"
        if looks_like_gguf_source(candidate):
            text = candidate
    if looks_like_gguf_source(text) or Path(text).expanduser().is_file():
        from servefit.gguf import read_model_spec

        return read_model_spec(text)

    from servefit.catalog.models import model_spec

    return model_spec(text, _needs_quant(f"catalog model {text!r}", quant))


def with_source_warnings(plan: Plan, spec: ModelSpec) -> Plan:
    """``plan`` with the warnings its model source calls for: a catalog quantization no repository lists."""
    if not spec.model_id or spec.source != spec.model_id or not spec.gguf_repo:
        return plan
    from servefit.catalog.models import get_model, publication_warning

    warning = publication_warning(get_model(spec.model_id), plan.quant or spec.ftype)
    if warning is None or warning in plan.warnings:
        return plan
    return replace(plan, warnings=(*plan.warnings, warning))
