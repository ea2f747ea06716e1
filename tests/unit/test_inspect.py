"""``servefit inspect``: every JSON field cross-checked against gguf.GGUFReader on the same file.

The expected values are computed here from GGUFReader's fields and tensor list only (an
independent implementation): layer kinds from tensor names, KV bytes from the K/V projection
shapes, recurrent state from the SSM tensor shapes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import pytest
import typer
from typer.testing import CliRunner

import synth
from httpserver import serve
from servefit.cli.inspect import register

Factory = Callable[..., Path]

# llama.cpp's sliding-window layers for the synthetic architectures (gemma3: pattern 6, gpt-oss: 2)
_SWA_PERIOD = {"gemma3": 6, "gpt-oss": 2}


def _is_swa(arch: str, i: int) -> bool:
    period = _SWA_PERIOD.get(arch)
    return period is not None and i % period < period - 1


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        pass

    return app


def _run(*args: str) -> Any:
    result = CliRunner().invoke(_app(), ["inspect", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _expected_from_reader(path: Path, arch: str) -> dict[str, Any]:
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    names = [t.name for t in reader.tensors]
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    n_layers = fields[f"{arch}.block_count"]
    n_nextn = fields.get(f"{arch}.nextn_predict_layers", 0)

    kinds = []
    kv_bytes = 0
    recurrent_bytes = 0
    for i in range(n_layers):
        leafs = {n.split(".")[2] for n in names if n.startswith(f"blk.{i}.")}
        parts = []
        if leafs & {"attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output"}:
            parts.append("attention-swa" if _is_swa(arch, i) and i < n_layers - n_nextn else "attention")
            if i < n_layers - n_nextn and f"blk.{i}.attn_k.weight" in shapes:
                kv_bytes += 2 * (shapes[f"blk.{i}.attn_k.weight"][1] + shapes[f"blk.{i}.attn_v.weight"][1])
            elif i < n_layers - n_nextn:  # fused QKV (phi3): Q is n_embd wide, K and V share the rest
                n_embd = fields[f"{arch}.embedding_length"]
                kv_bytes += 2 * (shapes[f"blk.{i}.attn_qkv.weight"][1] - n_embd)
        if any(leaf.startswith("ssm_") for leaf in leafs):
            parts.append("recurrent")
            d_conv, conv_dim = shapes[f"blk.{i}.ssm_conv1d.weight"]
            d_inner = shapes[f"blk.{i}.ssm_out.weight"][0]
            n_group = shapes[f"blk.{i}.ssm_norm.weight"][1]
            d_state = (conv_dim - d_inner) // (2 * n_group)
            recurrent_bytes += 4 * ((d_conv - 1) * conv_dim + d_state * d_inner)  # F32 r and s rows
        if any(leaf.endswith("_exps") for leaf in leafs):
            parts.append("moe")
        if leafs & {"ffn_up", "ffn_down", "ffn_gate"}:
            parts.append("ffn")
        if i >= n_layers - n_nextn:
            parts.append("nextn")
        kinds.append("+".join(parts))

    def shown(value: Any, field: Any) -> Any:
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY and len(field.data) > 64:
            return {"type": "array", "item_type": field.types[-1].name, "length": len(field.data)}
        return value

    return {
        "architecture": fields["general.architecture"],
        "file_bytes": path.stat().st_size,
        "tensor_count": len(reader.tensors),
        "n_layers": n_layers,
        "context_length": fields[f"{arch}.context_length"],
        "ftype": gguf.LlamaFileType(fields["general.file_type"]).name.removeprefix("MOSTLY_").removeprefix("ALL_"),
        "parameters": sum(int(t.n_elements) for t in reader.tensors),
        "layers": [{"index": i, "kind": k} for i, k in enumerate(kinds)],
        "tensors": [
            {"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in t.shape], "bytes": int(t.n_bytes)}
            for t in reader.tensors
        ],
        "kv_bytes_per_token_f16": kv_bytes,
        "recurrent_bytes_per_sequence": recurrent_bytes,
        "metadata": {k: shown(v, reader.fields[k]) for k, v in fields.items()},
    }


# MLA (deepseek2) and gated-delta-net (qwen3next) layers size their caches by rules this reader does not
# restate; tests/integration/test_memory_vs_llamacpp.py checks them against llama.cpp itself
_RESTATED = [a for a in synth.ALL_ARCHITECTURES if a not in ("deepseek2", "qwen3next")]
CASES: list[tuple[str, dict[str, Any]]] = [(arch, {}) for arch in _RESTATED] + [
    ("gemma3", {"n_layer": 8}),
    ("nemotron_h_moe", {"pattern": "M*EM", "n_nextn": 1}),
]


@pytest.mark.parametrize(("arch", "overrides"), CASES, ids=[f"{a}{'-' + str(o) if o else ''}" for a, o in CASES])
def test_json_matches_gguf_reader(arch: str, overrides: dict[str, Any], synth_model: Factory) -> None:
    path = synth_model(arch, **overrides)
    got = json.loads(_run(str(path), "--json").stdout)
    expected = _expected_from_reader(path, arch)
    assert set(expected) <= set(got)
    for key, value in expected.items():
        if key == "tensors":
            assert [{k: t[k] for k in ("name", "type", "shape", "bytes")} for t in got["tensors"]] == value
        elif key == "metadata":
            assert got["metadata"].keys() == value.keys()
            for mk, mv in value.items():
                assert got["metadata"][mk] == (pytest.approx(mv) if isinstance(mv, float | list) else mv), mk
        else:
            assert got[key] == value, key


def test_long_arrays_are_summarized(tmp_path: Path) -> None:
    tokens = [f"t{i}" for i in range(100)]
    path = synth.make_model(tmp_path / "m.gguf", "llama", n_vocab=100, extra_metadata={"tokenizer.ggml.tokens": tokens})
    got = json.loads(_run(str(path), "--json").stdout)
    assert got["metadata"]["tokenizer.ggml.tokens"] == {"type": "array", "item_type": "STRING", "length": 100}
    assert got["vocab_size"] == 100


def test_summary_text(synth_model: Factory) -> None:
    out = _run(str(synth_model("nemotron_h_moe")), "--tensors").stdout
    assert re.search(r"architecture\s+nemotron_h_moe", out)
    assert re.search(r"layers\s+8: 4 × recurrent, 3 × moe, 1 × attention", out)
    assert re.search(r"trained context\s+4,096 tokens", out)
    assert "KV cache per token" in out and "recurrent state" in out
    assert "blk.1.ffn_up_exps.weight" in out
    plain = _run(str(synth_model("llama"))).stdout
    assert "blk.0.attn_q.weight" not in plain
    assert re.search(r"F32\s+│\s+21\s+│", plain)


def test_remote_json_equals_local(synth_model: Factory) -> None:
    path = synth_model("gpt-oss")
    with serve() as server:
        url = server.add_file("/gpt-oss.gguf", path)
        remote = json.loads(_run(url, "--json").stdout)
    local = json.loads(_run(str(path), "--json").stdout)
    assert remote.pop("source") == url
    local.pop("source")
    assert remote == local


def test_bad_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + (7).to_bytes(4, "little") + b"\0" * 16)
    proc = subprocess.run(
        [sys.executable, "-m", "servefit", "inspect", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"servefit: {bad}: unsupported GGUF version 7 (only 2 and 3) at offset 4"
    assert proc.stdout == ""
