"""The model catalog: data validity, sources, lookups, loader errors, and the path to ModelSpec."""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from servefit.catalog import load_data_file
from servefit.catalog.models import (
    CAPABILITIES,
    MODELS_FILE,
    get_model,
    list_models,
    model_ladder,
    model_spec,
    parse_models,
    search_models,
)
from servefit.errors import CatalogError, UnknownModelError, UnknownQuantError

ROOT = Path(__file__).resolve().parents[2]
SHARED_MODELS = ROOT.parent / "shared" / "data" / "models.yaml"
FIGURES = ("total_params", "active_params", "context_advertised", "license", "config", "capabilities")


def _shared_rows() -> list[dict[str, Any]]:
    if not SHARED_MODELS.is_file():
        pytest.skip(f"reference data {SHARED_MODELS} is not beside the checkout")
    rows: list[dict[str, Any]] = yaml.safe_load(SHARED_MODELS.read_text(encoding="utf-8"))["models"]
    return rows


@functools.cache
def _raw_file() -> Any:
    return load_data_file(MODELS_FILE)


def _raw_rows() -> list[dict[str, Any]]:
    """A fresh, mutable copy of the rows of models.yaml as parsed from YAML."""
    rows: list[dict[str, Any]] = copy.deepcopy(_raw_file()["models"])
    return rows


# ---------------------------------------------------------------------------------------------
# the data


def test_the_catalog_holds_at_least_40_models() -> None:
    assert len(list_models()) >= 40


def test_ids_are_url_safe_and_unique() -> None:
    ids = [m.id for m in list_models()]
    assert len(ids) == len(set(ids))
    for model_id in ids:
        assert quote(model_id, safe="") == model_id
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", model_id), model_id


def test_every_family_of_the_reference_data_is_in_the_catalog() -> None:
    models = list_models()
    repos = [r.lower() for m in models for r in (m.hf_repo, *m.aliases)]
    model_types = {str(m.config["model_type"]) for m in models}
    for row in _shared_rows():
        repo = str(row["id"]).split()[0].lower()
        assert any(r.startswith(repo) for r in repos), f"reference model {repo} missing from the catalog"
        model_type = str(row["model_type"]).split()[0]
        assert model_type in model_types, f"reference model type {model_type} missing from the catalog"


_SHARED_KEYS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "first_k_dense_replace",
)


def test_catalog_configs_agree_with_the_reference_data() -> None:
    """Every integer hyperparameter the reference data holds for a model is the one the catalog config holds."""
    by_repo = {m.hf_repo.lower(): m for m in list_models()}
    by_repo.update({a.lower(): m for m in list_models() for a in m.aliases})
    checked = 0
    for row in _shared_rows():
        repo = str(row["id"]).split()[0].lower()
        entry = next((m for r, m in by_repo.items() if r.startswith(repo)), None)
        assert entry is not None, repo
        config = entry.config_dict()
        flat = {**config, **config.get("text_config", {})}
        for key in _SHARED_KEYS:
            value = row.get(key)
            if not isinstance(value, int) or key not in flat:
                continue
            if key == "max_position_embeddings" and entry.id in ("qwen3-235b-a22b",):
                continue  # the reference row notes the 2507 window; both copies agree (checked below)
            assert flat[key] == value, f"{entry.id}: {key} is {flat[key]}, reference data says {value}"
            checked += 1
    assert checked >= 60


def test_every_figure_names_its_source() -> None:
    for m in list_models():
        for name in FIGURES:
            assert m.sources.get(name, "").strip(), f"{m.id}: no source for {name}"
        if m.context_trained is not None:
            assert m.sources["context_trained"].strip()
        for repo in m.gguf_repos:
            assert repo.source.strip(), f"{m.id}: no source for GGUF repo {repo.repo}"
        for quant in m.published_quants:
            assert quant.source.strip() and quant.file_bytes > 0


def test_entries_are_consistent() -> None:
    for m in list_models():
        assert 0 < m.active_params <= m.total_params
        assert set(m.capabilities) <= set(CAPABILITIES)
        assert m.context_advertised > 0
        assert m.description and len(m.description) < 300
        assert isinstance(m.config.get("model_type"), str)
        assert m.gguf_repos, m.id


def test_entries_are_frozen() -> None:
    entry = get_model("qwen3-8b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.config["hidden_size"] = 1  # type: ignore[index]
    copied = entry.config_dict()
    copied["hidden_size"] = 1
    assert get_model("qwen3-8b").config["hidden_size"] == 4096


# ---------------------------------------------------------------------------------------------
# lookups


@pytest.mark.parametrize(
    "query",
    [
        "qwen3-8b",
        "Qwen3-8B",
        "Qwen/Qwen3-8B",
        "qwen/qwen3-8b",
        "unsloth/Qwen3-8B-GGUF",
        "https://huggingface.co/Qwen/Qwen3-8B",
        "hf://Qwen/Qwen3-8B",
        "  qwen3-8b  ",
    ],
)
def test_get_model_accepts_ids_and_repos(query: str) -> None:
    assert get_model(query).id == "qwen3-8b"


def test_get_model_resolves_aliases() -> None:
    assert get_model("Qwen/Qwen3-235B-A22B").id == "qwen3-235b-a22b"
    assert get_model("meta-llama/Meta-Llama-3.1-8B-Instruct").id == "llama-3.1-8b-instruct"


def test_unknown_model_suggests_the_closest_ids() -> None:
    with pytest.raises(UnknownModelError) as info:
        get_model("qwen3-8x")
    assert "qwen3-8b" in info.value.suggestions
    assert "did you mean" in str(info.value)
    with pytest.raises(UnknownModelError) as info:
        get_model("nemotron-3-super")
    assert info.value.suggestions[0] == "nemotron-3-super-120b-a12b"
    with pytest.raises(UnknownModelError) as info:
        get_model("somebody/Gemma-3-27B-IT-GGUF")
    assert "gemma-3-27b-it" in info.value.suggestions


def test_search_matches_every_word() -> None:
    coders = {m.id for m in search_models("qwen3 coder")}
    assert coders == {"qwen3-coder-30b-a3b-instruct", "qwen3-coder-480b-a35b-instruct"}
    assert {m.id for m in search_models("vision gemma")} == {"gemma-3-4b-it", "gemma-3-12b-it", "gemma-3-27b-it"}
    assert all(m.is_moe for m in search_models("moe"))
    assert {m.id for m in search_models("tool-calls llama 70b")} == {"llama-3.1-70b-instruct", "llama-3.3-70b-instruct"}
    assert len(search_models("")) == len(list_models())
    assert search_models("no-such-model-anywhere") == []


# ---------------------------------------------------------------------------------------------
# the loader's errors name the file, the row and the field


def _error(rows: list[dict[str, Any]]) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        parse_models({"models": rows}, path="models.yaml")
    return info.value


def test_a_missing_source_names_row_and_field() -> None:
    rows = _raw_rows()
    del rows[3]["sources"]["total_params"]
    err = _error(rows)
    assert (err.path, err.row, err.field) == ("models.yaml", rows[3]["id"], "sources.total_params")
    assert str(err).startswith(f"models.yaml: row {rows[3]['id']}: field sources.total_params:")


def test_a_duplicate_id_is_rejected() -> None:
    rows = _raw_rows()
    rows.append(copy.deepcopy(rows[0]))
    err = _error(rows)
    assert (err.row, err.field) == (rows[0]["id"], "id")
    assert "duplicate" in str(err)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "Qwen3 8B"}, "id"),
        ({"id": "qwen3-8b/"}, "id"),
        ({"total_params": -5}, "total_params"),
        ({"total_params": "many"}, "total_params"),
        ({"active_params": 10**15}, "active_params"),
        ({"context_advertised": 0}, "context_advertised"),
        ({"capabilities": ["telepathy"]}, "capabilities.0"),
        ({"capabilities": ["code", "code"]}, "capabilities"),
        ({"hf_repo": "not a repo"}, "hf_repo"),
        ({"gguf_repos": []}, "gguf_repos"),
        ({"config": {"hidden_size": 4096}}, "config.model_type"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_values_name_their_field(change: dict[str, Any], field: str) -> None:
    rows = _raw_rows()
    rows[5].update(change)
    err = _error(rows)
    assert err.field == field
    assert err.row in (rows[5]["id"], "#6")
    assert f"field {field}" in str(err)


def test_sources_must_name_known_fields() -> None:
    rows = _raw_rows()
    rows[0]["sources"]["total_parms"] = "typo"
    assert _error(rows).field == "sources.total_parms"
    rows = _raw_rows()
    rows[0]["sources"]["config.no_such_key"] = "somewhere"
    assert _error(rows).field == "sources.config.no_such_key"


def test_a_published_quant_needs_a_source_and_a_size() -> None:
    rows = _raw_rows()
    row = next(r for r in rows if r.get("published_quants"))
    del row["published_quants"][0]["source"]
    assert _error(rows).field == "published_quants.0.source"
    rows = _raw_rows()
    row = next(r for r in rows if r.get("published_quants"))
    row["published_quants"][0]["file_bytes"] = 0
    assert _error(rows).field == "published_quants.0.file_bytes"


def test_the_file_shape_is_checked() -> None:
    with pytest.raises(CatalogError, match="expected a mapping with a 'models' list"):
        parse_models([1, 2], path="models.yaml")
    with pytest.raises(CatalogError, match="row #2: expected a mapping"):
        parse_models({"models": [_raw_rows()[0], "oops"]}, path="models.yaml")


def test_a_broken_models_file_is_a_catalog_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import resources

    from servefit.catalog import models as catalog_models

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models.yaml").write_text("models: [\n  - id: x\n", encoding="utf-8")
    monkeypatch.setattr(resources, "files", lambda _package: tmp_path)
    with pytest.raises(CatalogError, match=r"catalog file models\.yaml: invalid YAML") as info:
        catalog_models._read_models_file()
    assert info.value.path == "models.yaml"
    (tmp_path / "data" / "models.yaml").unlink()
    with pytest.raises(CatalogError, match="cannot read"):
        catalog_models._read_models_file()


# ---------------------------------------------------------------------------------------------
# from the catalog to predicted quant sizes (servefit.inventory)


@pytest.mark.parametrize("model_id", [m.id for m in list_models()])
def test_each_config_goes_through_the_inventory(model_id: str) -> None:
    from servefit.inventory import hparams_from_config

    entry = get_model(model_id)
    config = entry.config_dict()
    arch, hparams = hparams_from_config(config)
    flat = {**config, **config.get("text_config", {})}
    assert hparams.n_embd == flat["hidden_size"]
    assert hparams.n_layer >= flat["num_hidden_layers"]
    assert arch


# Element counts published for real checkpoints and GGUF files, against which the catalog configs are
# checked through the tensor inventory: a wrong layer count, width or vocabulary shows up here.
PUBLISHED_PARAMETERS = [
    # llama-bench 'params' column (GGUF elements, rounded to 0.01 B): llama.cpp benches/dgx-spark/dgx-spark.md
    ("gpt-oss-20b", 20.91e9, 0.005e9),
    ("gpt-oss-120b", 116.83e9, 0.005e9),
    ("qwen3-coder-30b-a3b-instruct", 30.53e9, 0.005e9),
    ("qwen2.5-coder-7b-instruct", 7.62e9, 0.005e9),
    # Megatron-Bridge verification card: 123,611,033,088 elements in the BF16 checkpoint (MTP included)
    ("nemotron-3-super-120b-a12b", 123_611_033_088, 0),
    # keras-hub Gemma 3 presets (text tower): gemma3_instruct_1b
    ("gemma-3-1b-it", 999_885_952, 0),
    # Mistral Small 3.2: 23,572,403,200 text parameters (shared/data/models.yaml field_sources)
    ("mistral-small-3.2-24b-instruct-2506", 23_572_403_200, 0),
]


@pytest.mark.parametrize(("model_id", "published", "tolerance"), PUBLISHED_PARAMETERS)
def test_catalog_configs_reproduce_published_parameter_counts(
    model_id: str, published: float, tolerance: float
) -> None:
    from servefit.inventory import spec_from_config

    spec = spec_from_config(get_model(model_id).config_dict(), "BF16")
    assert abs(spec.parameters - published) <= tolerance, f"{model_id}: {spec.parameters:,} elements"


def test_catalog_totals_are_close_to_the_tensor_inventory() -> None:
    """Nominal parameter counts (the size in a model's name) stay within 6% of the exact element count."""
    from servefit.inventory import spec_from_config

    for entry in list_models():
        parameters = spec_from_config(entry.config_dict(), "BF16").parameters
        assert abs(parameters - entry.total_params) / entry.total_params < 0.06, (entry.id, parameters)


def test_model_spec_predicts_a_quant_for_a_catalog_model() -> None:
    spec = model_spec("Qwen/Qwen3-8B", "q4_k_m")
    assert (spec.model_id, spec.ftype, spec.gguf_repo) == ("qwen3-8b", "Q4_K_M", "unsloth/Qwen3-8B-GGUF")
    assert spec.name == "Qwen3 8B" and spec.source == "qwen3-8b"
    assert spec.architecture == "qwen3" and spec.hparams.n_layer == 36
    assert spec.file_bytes >= spec.tensor_bytes > 0


def test_model_spec_picks_a_gguf_repo_that_has_the_quant() -> None:
    spec = model_spec("gpt-oss-20b", "MXFP4_MOE")
    assert spec.gguf_repo == "ggml-org/gpt-oss-20b-GGUF"
    spec = model_spec("gpt-oss-20b", "Q8_0")
    assert spec.gguf_repo == "ggml-org/gpt-oss-20b-GGUF"  # no repo lists Q8_0: the first one


def test_an_unknown_quant_lists_what_the_model_has() -> None:
    with pytest.raises(UnknownQuantError) as info:
        model_spec("qwen3-8b", "Q4_K_X")
    assert "Q4_K_M" in info.value.suggestions
    with pytest.raises(UnknownQuantError) as info:
        model_spec("qwen3-8b", "zzz")
    assert "Q8_0" in info.value.suggestions and "BF16" in info.value.suggestions


def test_the_ladder_merges_published_sizes() -> None:
    ladder = model_ladder("deepseek-r1")
    by_name = {r.name: r for r in ladder}
    assert {"UD-IQ1_S", "UD-Q2_K_XL", "Q4_K_M", "Q8_0"} <= set(by_name)
    published = by_name["UD-IQ1_S"]
    assert (published.source, published.tensor_bytes, published.file_bytes) == ("published", None, 131_000_000_000)
    assert published.size_text == "131GB" and "unsloth" in published.reference
    predicted = by_name["Q4_K_M"]
    assert predicted.source == "predicted" and predicted.tensor_bytes is not None
    assert predicted.file_bytes >= predicted.tensor_bytes
    sizes = [r.file_bytes for r in ladder]
    assert sizes == sorted(sizes)
    assert by_name["Q2_K"].file_bytes < by_name["Q4_K_M"].file_bytes < by_name["Q8_0"].file_bytes


# ---------------------------------------------------------------------------------------------
# the generated page


def test_the_models_page_is_generated_from_the_data() -> None:
    spec = importlib.util.spec_from_file_location("gen_model_docs", ROOT / "scripts" / "gen_model_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_model_docs"] = module
    try:
        spec.loader.exec_module(module)
        text = module.render()
    finally:
        del sys.modules["gen_model_docs"]
    assert (ROOT / "docs" / "models.md").read_text(encoding="utf-8") == text, "run python scripts/gen_model_docs.py"
    for m in list_models():
        assert f"### {m.id}\n" in text
        assert m.sources["total_params"].replace("|", "\\|") in text
