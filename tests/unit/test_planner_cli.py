"""``servefit plan``: the requirements table, the JSON form, the exit codes."""

from __future__ import annotations

import json

import pytest

from servefit.cli import main
from servefit.cli.plan import parse_size
from servefit.errors import OptionsError


def test_plan_human_output(synth_model, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = synth_model("llama")
    assert main(["plan", str(path), "--on", "2xl4", "--ctx", "2048"]) == 0
    out = capsys.readouterr().out
    for label in ("Model size", "VRAM available", "VRAM used", "System RAM", "Min RAM required", "GPU layers"):
        assert label in out
    assert "Reading from disk  no" in out and "Strategy           gpu" in out
    assert "llama-server -m MODEL.gguf -c 2048 -np 1 -ngl" in out


def test_plan_json(synth_model, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = synth_model("llama")
    assert main(["plan", str(path), "--on", "cpu", "--ctx", "1024", "--parallel", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is True and data["strategy"] == "cpu" and data["context"] == 1024
    assert data["parallel"] == 2 and "-np" in data["llama_server_args"]
    assert [d["kind"] for d in data["devices"]] == ["host"]
    assert data["devices"][0]["total_bytes"] == data["ram_required_bytes"]


def test_plan_that_does_not_fit_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "nemotron-3-super-120b-a12b", "--quant", "Q4_K_S", "--on", "cpu", "--ram", "8GB", "--no-mmap"])
    assert code == 0
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "Why it does not fit" in out and "\n  llama-server -" not in out


def test_bad_options_exit_1(synth_model, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = synth_model("llama")
    assert main(["plan", str(path), "--on", "cpu", "--flash-attn", "maybe"]) == 1
    assert "--flash-attn" in capsys.readouterr().err
    assert main(["plan", str(path), "--on", "cpu", "--flash-attn", "off", "-ctv", "q8_0"]) == 1
    assert "flash attention" in capsys.readouterr().err


def test_parse_size() -> None:
    assert parse_size("24GB", option="vram") == 24 * 10**9
    assert parse_size("24GiB", option="vram") == 24 * 2**30
    assert parse_size("512MiB", option="vram") == 512 * 2**20
    assert parse_size("96", option="ram") == 96 * 2**30
    with pytest.raises(OptionsError):
        parse_size("lots", option="ram")


def test_unlisted_quant_is_flagged(capsys: pytest.CaptureFixture[str]) -> None:
    # gpt-oss 20B is published as MXFP4 only: a Q4_K_M plan is right for a self-made file, but its -hf tag may not exist
    assert main(["plan", "gpt-oss-20b", "--quant", "Q4_K_M", "--on", "1xL4", "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    flagged = [w for w in warnings if "lists Q4_K_M" in w]
    assert len(flagged) == 1 and "MXFP4_MOE" in flagged[0] and "llama-quantize" in flagged[0]
    assert main(["plan", "gpt-oss-20b", "--quant", "MXFP4_MOE", "--on", "1xL4", "--json"]) == 0
    assert not [w for w in json.loads(capsys.readouterr().out)["warnings"] if "lists" in w]


def test_unverified_repository_is_flagged(capsys: pytest.CaptureFixture[str]) -> None:
    # no repository of Nemotron 3 Super lists its files in the catalog: the demo's -hf tag is unchecked
    assert main(["plan", "nemotron-3-super-120b-a12b", "--quant", "Q4_K_S", "--on", "scaleway/l4-2-24g"]) == 0
    out = capsys.readouterr().out
    assert "check that it has Q4_K_S" in out and "-hf ggml-org/Nemotron-3-Super-120B-GGUF:Q4_K_S" in out


def test_gguf_source_gets_no_catalog_warning(synth_model, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["plan", str(synth_model("llama")), "--on", "cpu", "--ctx", "1024", "--json"]) == 0
    assert not [w for w in json.loads(capsys.readouterr().out)["warnings"] if "catalog" in w]


def test_unified_memory_is_one_pool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "qwen3-30b-a3b", "--quant", "Q4_K_M", "--on", "dgx-spark", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unified_memory"] is True
    # one pool: the GPU's share is part of the RAM required
    assert data["ram_required_bytes"] >= data["vram_used_bytes"] + data["devices"][-1]["total_bytes"]
    assert main(["plan", "qwen3-30b-a3b", "--quant", "Q4_K_M", "--on", "dgx-spark"]) == 0
    out = capsys.readouterr().out
    assert "(unified: part of system RAM)" in out and "(shared with the GPU)" in out
    assert main(["plan", "qwen3-30b-a3b", "--quant", "Q4_K_M", "--on", "2xl4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unified_memory"] is False
