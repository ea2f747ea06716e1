"""``servefit models``: the list, the search, the card with its quant ladder, JSON shapes and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from servefit.catalog.models import get_model, list_models, model_ladder
from servefit.cli import main
from servefit.cli.models import register
from servefit.errors import OptionsError, SourceError, UnknownModelError

LADDER_KEYS = {"name", "tensor_bytes", "file_bytes", "bits_per_weight", "source"}


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    register(app)

    @app.callback()
    def _root() -> None:
        """Group, so that the command is addressed by name as in the real CLI."""

    return app


def _run(*args: str) -> Any:
    result = CliRunner().invoke(_app(), list(args))
    return result


def _json(*args: str) -> Any:
    result = _run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_models_json_lists_the_whole_catalog() -> None:
    rows = _json("models")
    assert len(rows) == len(list_models()) >= 40
    for row in rows:
        assert {"id", "name", "source", "total_params", "active_params", "context_advertised", "config"} <= set(row)
        assert row["source"] and row["sources"]["config"] == row["source"]


def test_models_query_filters_by_every_word() -> None:
    rows = _json("models", "qwen3", "coder")
    assert [r["id"] for r in rows] == ["qwen3-coder-30b-a3b-instruct", "qwen3-coder-480b-a35b-instruct"]
    result = _run("models", "nemotron")
    assert result.exit_code == 0
    assert "nemotron-3-super-120b-a12b" in result.output and "qwen3-8b" not in result.output
    result = _run("models", "no-such-thing")
    assert result.exit_code == 0 and "no model matches" in result.output


def test_show_gives_the_card_and_the_quant_ladder() -> None:
    card = _json("models", "show", "Qwen/Qwen3-8B")
    assert card["id"] == "qwen3-8b" and card["architecture"] == "qwen3"
    names = [q["name"] for q in card["quants"]]
    assert {"Q2_K", "Q4_K_M", "Q8_0", "BF16"} <= set(names)
    for q in card["quants"]:
        assert set(q) >= LADDER_KEYS
        assert q["source"] == "predicted"
        assert q["file_bytes"] >= q["tensor_bytes"] > 0
        assert 1.5 < q["bits_per_weight"] < 17
    assert card["quants"] == [r.to_dict() for r in model_ladder("qwen3-8b")]


def test_show_lists_published_quants_with_their_source() -> None:
    card = _json("models", "show", "kimi-k2-instruct")
    published = [q for q in card["quants"] if q["source"] == "published"]
    assert {q["name"] for q in published} == {"UD-TQ1_0", "UD-Q2_K_XL"}
    for q in published:
        assert q["tensor_bytes"] is None and q["reference"].startswith("https://")


def test_show_table_output() -> None:
    result = _run("models", "show", "gpt-oss-20b")
    assert result.exit_code == 0, result.output
    assert "gpt-oss-20b" in result.output and "MXFP4_MOE" in result.output and "GiB" in result.output


def test_show_reads_a_local_config_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(get_model("qwen3-8b").config_dict()), encoding="utf-8")
    card = _json("models", "show", str(path))
    assert card["id"] is None and card["source"] == str(path) and card["architecture"] == "qwen3"
    assert card["n_layer"] == 36 and card["n_embd"] == 4096
    assert card["quants"] == [r.to_dict() for r in model_ladder("qwen3-8b")]
    same = _json("models", "show", str(tmp_path))  # a folder holding config.json
    assert same["quants"] == card["quants"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a valid JSON config.json"),
        ("[1, 2]", "must hold a JSON object"),
    ],
)
def test_a_broken_config_json_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    result = _run("models", "show", str(path))
    assert isinstance(result.exception, SourceError)
    assert message in str(result.exception) and str(path) in str(result.exception)


def test_a_missing_config_json_names_the_path(tmp_path: Path) -> None:
    result = _run("models", "show", str(tmp_path / "nope" / "config.json"))
    assert isinstance(result.exception, SourceError)
    assert "cannot read config.json" in str(result.exception)


def test_show_needs_exactly_one_model() -> None:
    assert isinstance(_run("models", "show").exception, OptionsError)
    assert isinstance(_run("models", "show", "a", "b").exception, OptionsError)


def test_unknown_models_answer_with_suggestions(capsys: pytest.CaptureFixture[str]) -> None:
    result = _run("models", "show", "gemma-3-27b")
    assert isinstance(result.exception, UnknownModelError)
    assert main(["models", "show", "gemma-3-27b"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("servefit: unknown model 'gemma-3-27b': did you mean 'gemma-3-27b-it'")
    assert len(err.strip().splitlines()) == 1
