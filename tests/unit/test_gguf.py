"""read_model_spec on synthetic models, cross-checked against gguf.GGUFReader (an independent reader)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import pytest

import synth
from servefit.errors import GGUFError, MissingSplitError, ModelError, SourceError
from servefit.gguf import GGUFArray, ftype_name, read_model_spec, swa_layers
from servefit.model import TensorRole

Factory = Callable[..., Path]


def _reader_value(field: Any) -> Any:
    value = field.contents()
    return value


def _ours(value: Any) -> Any:
    if isinstance(value, GGUFArray):
        return None if value.values is None else [_ours(v) for v in value.values]
    return value


@pytest.mark.parametrize("arch", synth.ARCHITECTURES)
def test_tensors_and_metadata_match_gguf_reader(arch: str, synth_model: Factory) -> None:
    path = synth_model(arch)
    spec = read_model_spec(str(path))
    reader = gguf.GGUFReader(path)

    assert [t.name for t in spec.tensors] == [t.name for t in reader.tensors]
    for ours, theirs in zip(spec.tensors, reader.tensors, strict=True):
        assert ours.shape == tuple(int(d) for d in theirs.shape)
        assert ours.ggml_type == theirs.tensor_type.name
        assert ours.nbytes == int(theirs.n_bytes)
        assert ours.n_elements == int(theirs.n_elements)
        assert reader.data_offset + ours.offset == theirs.data_offset

    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    assert sorted(spec.metadata) == sorted(keys)
    for key in keys:
        theirs = _reader_value(reader.fields[key])
        ours = _ours(spec.metadata[key])
        if isinstance(theirs, float) or (isinstance(theirs, list) and theirs and isinstance(theirs[0], float)):
            assert ours == pytest.approx(theirs)
        else:
            assert ours == theirs, key

    assert spec.architecture == reader.fields["general.architecture"].contents()
    assert spec.file_bytes == path.stat().st_size
    assert spec.parameters == sum(int(t.n_elements) for t in reader.tensors)
    assert spec.tensor_bytes == sum(int(t.n_bytes) for t in reader.tensors)
    file_type = reader.fields["general.file_type"].contents()
    assert spec.ftype == gguf.LlamaFileType(file_type).name.replace("MOSTLY_", "").replace("ALL_", "")
    assert spec.hparams.n_layer == reader.fields[f"{arch}.block_count"].contents()
    assert spec.hparams.n_ctx_train == reader.fields[f"{arch}.context_length"].contents()
    assert spec.hparams.n_vocab == reader.fields[f"{arch}.vocab_size"].contents()


def test_layer_kinds_follow_the_tensors(synth_model: Factory) -> None:
    spec = read_model_spec(str(synth_model("nemotron_h_moe", pattern="MEM*E")))
    assert [layer.kind for layer in spec.layers] == ["recurrent", "moe", "recurrent", "attention", "moe"]
    assert spec.hparams.n_head_kv == (0, 0, 0, 2, 0)
    assert spec.hparams.n_ff == (0, 256, 0, 0, 256)
    assert spec.hparams.recurrent == (True, False, True, False, False)
    assert spec.hparams.moe_latent_size == 256
    assert spec.hparams.n_expert_shared == 1
    assert spec.hparams.n_ff_shexp == 512
    assert (spec.hparams.ssm_d_conv, spec.hparams.ssm_d_inner, spec.hparams.ssm_d_state) == (4, 1024, 64)
    assert (spec.hparams.ssm_n_group, spec.hparams.ssm_dt_rank) == (2, 16)
    exps = [t for t in spec.tensors if t.role is TensorRole.ROUTED_EXPERTS]
    assert {t.layer for t in exps} == {1, 4}
    assert {t.name.split(".")[2] for t in spec.tensors if t.role is TensorRole.SHARED_EXPERTS} == {
        "ffn_up_shexp",
        "ffn_down_shexp",
    }


def test_nextn_layers_are_counted_at_the_end(synth_model: Factory) -> None:
    spec = read_model_spec(str(synth_model("nemotron_h_moe", pattern="ME*E", n_nextn=1)))
    assert spec.hparams.n_layer == 5
    assert spec.hparams.n_nextn_layer == 1
    assert [layer.is_nextn for layer in spec.layers] == [False] * 4 + [True]
    assert spec.layers[4].kind == "attention+moe+nextn"


def test_gemma3_sliding_window_pattern(synth_model: Factory) -> None:
    spec = read_model_spec(str(synth_model("gemma3", n_layer=13)))
    # llama.cpp gemma3: pattern 6, five sliding-window layers then one global layer
    assert spec.hparams.swa_layers == tuple(i % 6 != 5 for i in range(13))
    assert spec.hparams.n_swa == 64
    assert [layer.sliding_window for layer in spec.layers] == list(spec.hparams.swa_layers)


def test_gemma3_without_window_has_no_swa(synth_model: Factory) -> None:
    spec = read_model_spec(str(synth_model("gemma3", n_swa=0)))
    assert spec.hparams.swa_layers == (False,) * 6
    assert spec.hparams.n_swa == 0


def test_gpt_oss_alternates_and_has_mxfp4_experts(synth_model: Factory) -> None:
    spec = read_model_spec(str(synth_model("gpt-oss", n_layer=4)))
    assert spec.hparams.swa_layers == (True, False, True, False)
    assert spec.ftype == "MXFP4_MOE"
    assert {t.ggml_type for t in spec.tensors if t.role is TensorRole.ROUTED_EXPERTS and t.name.endswith("weight")} == {
        "MXFP4"
    }
    assert spec.hparams.n_expert == 4
    assert spec.hparams.n_expert_used == 2


@pytest.mark.parametrize(
    ("arch", "metadata", "expected"),
    [
        ("gemma2", {}, (True, False, True, False)),
        ("cohere2moe", {"cohere2moe.attention.sliding_window": 8}, (False, True, True, True)),
        ("cohere2", {"cohere2.attention.sliding_window": 8}, (True, True, True, False)),
        ("gemma3", {"gemma3.attention.sliding_window": 8, "gemma3.attention.sliding_window_pattern": 2}, None),
        ("olmo2", {}, (False,) * 4),
        ("llama", {"llama.attention.sliding_window": 8}, (False,) * 4),
        ("llama4", {}, (True, True, True, False)),
        ("llama4", {"llama4.attention.sliding_window": 0}, (False,) * 4),
    ],
)
def test_swa_rules(arch: str, metadata: dict[str, Any], expected: tuple[bool, ...] | None) -> None:
    _, flags = swa_layers(arch, metadata, 4, 4)
    if expected is None:
        expected = (True, False, True, False)
    assert flags == expected


def test_swa_explicit_array() -> None:
    pattern = GGUFArray("BOOL", 4, (False, True, True, False))
    n_swa, flags = swa_layers(
        "gemma4", {"gemma4.attention.sliding_window": 512, "gemma4.attention.sliding_window_pattern": pattern}, 4, 4
    )
    assert (n_swa, flags) == (512, (False, True, True, False))


def test_ftype_names() -> None:
    assert ftype_name(15) == "Q4_K_M"
    assert ftype_name(0) == "F32"
    assert ftype_name(38) == "MXFP4_MOE"
    assert ftype_name(9999) == "unknown"
    assert ftype_name(None) == "unknown"


def test_split_model_merges_parts(tmp_path: Path) -> None:
    first = synth.make_model(tmp_path / "llama.gguf", "llama", split_max_tensors=8)
    whole = synth.make_model(tmp_path / "whole.gguf", "llama")
    spec = read_model_spec(str(first))
    ref = read_model_spec(str(whole))
    parts = sorted(tmp_path.glob("llama-*-of-*.gguf"))
    assert len(parts) == 3
    assert [t.name for t in spec.tensors] == [t.name for t in ref.tensors]
    assert [t.split for t in spec.tensors] == [0] * 8 + [1] * 8 + [2] * 5
    assert spec.file_bytes == sum(p.stat().st_size for p in parts)
    assert spec.parameters == ref.parameters
    # any part names the whole model
    assert read_model_spec(str(parts[1])).parameters == ref.parameters


def test_missing_split_part_is_named(tmp_path: Path) -> None:
    first = synth.make_model(tmp_path / "llama.gguf", "llama", split_max_tensors=8)
    missing = tmp_path / "llama-00002-of-00003.gguf"
    missing.unlink()
    with pytest.raises(MissingSplitError, match=r"llama-00002-of-00003\.gguf is missing"):
        read_model_spec(str(first))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_model_spec(str(tmp_path / "absent.gguf"))
    with pytest.raises(SourceError, match="is a directory"):
        read_model_spec(str(tmp_path))


def test_missing_architecture_and_block_count(tmp_path: Path) -> None:
    path = synth.write_gguf(tmp_path / "x.gguf", "llama", {"llama.embedding_length": 256}, [("a.weight", (32,))])
    with pytest.raises(ModelError, match=r"llama\.block_count is missing"):
        read_model_spec(str(path))


def test_per_layer_array_of_wrong_length(tmp_path: Path) -> None:
    meta, tensors = synth.model_layout("llama")
    meta["llama.attention.head_count_kv"] = [2, 2, 2]
    path = synth.write_gguf(tmp_path / "x.gguf", "llama", meta, tensors)
    with pytest.raises(ModelError, match="head_count_kv has 3 items, expected 2"):
        read_model_spec(str(path))


def test_v2_file_is_read(tmp_path: Path) -> None:
    path = synth.make_model(tmp_path / "v3.gguf", "llama")
    data = bytearray(path.read_bytes())
    data[4:8] = (2).to_bytes(4, "little")
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(bytes(data))
    assert read_model_spec(str(v2)).parameters == read_model_spec(str(path)).parameters


def test_big_endian_file_is_read(tmp_path: Path) -> None:
    meta, tensors = synth.model_layout("llama")
    little = synth.write_gguf(tmp_path / "le.gguf", "llama", meta, tensors)
    writer = gguf.GGUFWriter(tmp_path / "be.gguf", "llama", endianess=gguf.GGUFEndian.BIG)
    reader = gguf.GGUFReader(little)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, field.contents())
        else:
            writer.add_key_value(key, field.contents(), vtype)
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data.byteswap().view(t.data.dtype.newbyteorder(">")), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    ours = read_model_spec(str(tmp_path / "be.gguf"))
    ref = read_model_spec(str(little))
    assert [(t.name, t.shape, t.nbytes) for t in ours.tensors] == [(t.name, t.shape, t.nbytes) for t in ref.tensors]
    assert ours.hparams == ref.hparams


def test_gguf_error_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 60)
    with pytest.raises(GGUFError) as info:
        read_model_spec(str(bad))
    assert str(info.value) == f"{bad}: not a GGUF file (magic b'PK\\x03\\x04') at offset 0"
    assert "\n" not in str(info.value)


def test_expert_sizes_fall_back_to_tensor_shapes(tmp_path: Path) -> None:
    meta, tensors = synth.model_layout("qwen3moe")
    del meta["qwen3moe.expert_feed_forward_length"]
    spec = read_model_spec(str(synth.write_gguf(tmp_path / "m.gguf", "qwen3moe", meta, tensors)))
    assert spec.hparams.n_ff_exp == 256  # ffn_up_exps is [n_embd, n_ff_exp, n_expert]


def test_duplicate_tensor_across_split_parts(tmp_path: Path) -> None:
    meta = {"llama.block_count": 1, "llama.embedding_length": 32}
    synth.write_gguf(tmp_path / "x-00001-of-00002.gguf", "llama", meta, [("blk.0.a.weight", (32,))])
    synth.write_gguf(tmp_path / "x-00002-of-00002.gguf", "llama", meta, [("blk.0.a.weight", (32,))])
    with pytest.raises(GGUFError, match=r"x-00002-of-00002\.gguf: duplicate tensor name 'blk\.0\.a\.weight' \(also in"):
        read_model_spec(str(tmp_path / "x-00001-of-00002.gguf"))


def test_split_count_must_match_the_parts(tmp_path: Path) -> None:
    meta = {"llama.block_count": 1, "llama.embedding_length": 32, "split.count": (3, gguf.GGUFValueType.UINT16)}
    first = synth.write_gguf(tmp_path / "y-00001-of-00002.gguf", "llama", meta, [("blk.0.a.weight", (32,))])
    synth.write_gguf(tmp_path / "y-00002-of-00002.gguf", "llama", {}, [("blk.0.b.weight", (32,))])
    with pytest.raises(GGUFError, match=r"split\.count is 3 but the model has 2 part"):
        read_model_spec(str(first))
