"""resolve_model: config.json paths, GGUF sources and catalog ids, each to the right back end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs import LLAMA31_8B
from servefit.errors import NotFoundError, OptionsError, ServefitError, SourceError
from servefit.gguf import read_model_spec
from servefit.resolve import resolve_model


def test_config_json_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA31_8B))
    spec = resolve_model(str(path), "Q4_K_M")
    assert spec.architecture == "llama" and spec.ftype == "Q4_K_M" and spec.hparams.n_layer == 32
    # a folder holding config.json works too
    assert resolve_model(str(tmp_path), "Q8_0").ftype == "Q8_0"
    with pytest.raises(OptionsError, match="--quant"):
        resolve_model(str(path))


def test_bad_config_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(SourceError, match="not a JSON config"):
        resolve_model(str(path), "Q4_K_M")
    path.write_text("[1, 2]")
    with pytest.raises(ServefitError, match="JSON object"):
        resolve_model(str(path), "Q4_K_M")


def test_gguf_path(synth_model) -> None:  # type: ignore[no-untyped-def]
    path = synth_model("llama")
    spec = resolve_model(str(path))
    direct = read_model_spec(str(path))
    assert spec.architecture == direct.architecture == "llama"
    assert spec.tensors == direct.tensors


def test_catalog_id() -> None:
    spec = resolve_model("nemotron-3-super-120b-a12b", "Q4_K_S")
    assert spec.model_id == "nemotron-3-super-120b-a12b" and spec.ftype == "Q4_K_S"
    assert spec.architecture == "nemotron_h_moe"
    with pytest.raises(OptionsError, match="--quant"):
        resolve_model("nemotron-3-super-120b-a12b")
    with pytest.raises(NotFoundError):
        resolve_model("no-such-model-anywhere", "Q4_K_M")


def test_empty_source() -> None:
    with pytest.raises(SourceError):
        resolve_model("   ")
