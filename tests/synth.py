"""Small synthetic GGUF models with the real tensor names and shapes of llama.cpp architectures.

``make_model(path, arch)`` writes a model that llama.cpp loads (``llama_model_load_from_file``) and
quantizes (``llama_model_quantize``): the metadata keys each architecture's ``load_arch_hparams``
requires, and exactly the tensors its ``load_arch_tensors`` creates (a GGUF with an extra tensor is
refused with "wrong number of tensors"). Sizes are small (n_embd 256 or 512, a few layers, a vocab
of a few hundred dummy tokens) and matrix rows are multiples of 256 where K-quants need it.

Sources (llama.cpp in llama-cpp-python 0.3.36): ``src/llama-model.cpp`` (common hparams),
``src/models/<arch>.cpp`` (per-architecture hparams and tensors), ``src/llama-arch.cpp`` (key and
tensor names), ``src/llama-vocab.cpp`` (``tokenizer.ggml.model = "no_vocab"`` with
``{arch}.vocab_size`` dummy tokens).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np

__all__ = ["ALL_ARCHITECTURES", "ARCHITECTURES", "MORE_ARCHITECTURES", "make_model", "model_layout", "write_gguf"]

F32 = gguf.GGMLQuantizationType.F32
F16 = gguf.GGMLQuantizationType.F16
MXFP4 = gguf.GGMLQuantizationType.MXFP4

Shape = tuple[int, ...]
TensorList = list[tuple[str, Shape]]

# general.file_type for the dtype of the matrices (gguf.LlamaFileType values)
_FILE_TYPE = {F32: gguf.LlamaFileType.ALL_F32, F16: gguf.LlamaFileType.MOSTLY_F16}

# tensors that stay F32 whatever the requested dtype (as llama.cpp's convert_hf_to_gguf keeps them)
_KEEP_F32 = ("*norm*", "*.bias", "*ssm_conv1d*", "*ssm_a", "*ssm_d", "*attn_sinks*", "*exp_probs_b*")


def _metadata_value(writer: gguf.GGUFWriter, key: str, value: Any) -> None:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], gguf.GGUFValueType):
        writer.add_key_value(key, value[0], value[1])
    elif isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        if value < 0:
            writer.add_int32(key, value)
        elif value >= 2**32:
            writer.add_uint64(key, value)
        else:
            writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, list | tuple):
        writer.add_array(key, list(value))
    else:
        raise TypeError(f"unsupported metadata value for {key}: {value!r}")


def _tensor_data(name: str, shape: Shape, ggml_type: gguf.GGMLQuantizationType, rng: np.random.Generator) -> Any:
    """Random data of the right numpy shape (GGML shape reversed); raw blocks for quantized types."""
    np_shape = tuple(reversed(shape))
    if ggml_type == MXFP4:
        block_size, type_size = gguf.GGML_QUANT_SIZES[MXFP4]
        if shape[0] % block_size:
            raise ValueError(f"{name}: row length {shape[0]} is not a multiple of {block_size} for MXFP4")
        n_blocks = shape[0] // block_size
        raw = rng.integers(0, 256, size=(*np_shape[:-1], n_blocks, type_size), dtype=np.uint8)
        raw[..., 0] = rng.integers(118, 127, size=raw.shape[:-1], dtype=np.uint8)  # e8m0 scale: 2^-9 .. 2^-1
        return raw.reshape(*np_shape[:-1], n_blocks * type_size)
    if ggml_type not in (F32, F16):
        raise ValueError(f"{name}: synthetic data only for F32, F16 and MXFP4, not {ggml_type.name}")
    dtype = np.float32 if ggml_type == F32 else np.float16
    leaf = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
    if "norm" in leaf and name.endswith(".weight"):
        return np.ones(np_shape, dtype=dtype)
    if name.endswith(".bias") or leaf.endswith("exp_probs_b"):
        return np.zeros(np_shape, dtype=dtype)
    if leaf.endswith("ssm_a"):
        return -np.exp(rng.standard_normal(np_shape).astype(np.float32) * 0.1).astype(dtype)
    return (rng.standard_normal(np_shape) * 0.02).astype(dtype)


def write_gguf(
    path: str | Path,
    arch: str,
    metadata: Mapping[str, Any],
    tensors: Sequence[tuple[str, Shape]],
    *,
    dtype: gguf.GGMLQuantizationType = F32,
    tensor_types: Mapping[str, gguf.GGMLQuantizationType] | None = None,
    file_type: int | None = None,
    zeros: bool = False,
    seed: int = 0,
    split_max_tensors: int = 0,
) -> Path:
    """Write a GGUF file with ``metadata`` (values typed from Python: int -> u32, float -> f32, ...;
    a ``(value, GGUFValueType)`` pair forces a type) and ``tensors`` (name, shape in GGML order).

    Matrices get ``dtype``; norms, biases and small SSM vectors stay F32; ``tensor_types`` maps
    fnmatch patterns to a type (first match wins). ``general.architecture`` and
    ``general.file_type`` are written unless ``metadata`` sets them. With ``split_max_tensors``
    the model is split into ``<stem>-0000K-of-0000N.gguf`` files and the first part is returned.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    meta = dict(metadata)
    if "general.file_type" not in meta:
        meta["general.file_type"] = int(file_type if file_type is not None else _FILE_TYPE.get(dtype, 0))
    meta.setdefault("general.name", f"synthetic {arch}")
    for key, value in meta.items():
        if key == "general.architecture":
            continue
        _metadata_value(writer, key, value)
    for name, shape in tensors:
        ggml_type = dtype
        if len(shape) == 1 or any(fnmatch.fnmatchcase(name, p) for p in _KEEP_F32):
            ggml_type = F32
        for pattern, forced in (tensor_types or {}).items():
            if fnmatch.fnmatchcase(name, pattern):
                ggml_type = forced
                break
        data = _tensor_data(name, shape, ggml_type, rng)
        if zeros:
            data = np.zeros_like(data)
        if ggml_type in (F32, F16):
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, data, raw_dtype=ggml_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        first = path.with_name(f"{path.stem}-00001-of-{len(writer.tensors):05d}.gguf")
        return first
    return path


# --------------------------------------------------------------------------------------------
# Architectures: each returns (metadata, tensors) for a small model; keyword overrides change sizes.


def _common(arch: str, p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "tokenizer.ggml.model": "no_vocab",
        f"{arch}.vocab_size": p["n_vocab"],
        f"{arch}.context_length": p["n_ctx"],
        f"{arch}.embedding_length": p["n_embd"],
        f"{arch}.block_count": p["n_layer"],
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-6,
    }


def _embeddings(p: Mapping[str, Any], *, tied: bool) -> TensorList:
    out: TensorList = [("token_embd.weight", (p["n_embd"], p["n_vocab"])), ("output_norm.weight", (p["n_embd"],))]
    if not tied:
        out.append(("output.weight", (p["n_embd"], p["n_vocab"])))
    return out


def _attention(i: int, n_embd: int, n_head: int, n_head_kv: int, head_dim: int, *, bias: bool = False) -> TensorList:
    b = f"blk.{i}."
    out: TensorList = [
        (b + "attn_q.weight", (n_embd, n_head * head_dim)),
        (b + "attn_k.weight", (n_embd, n_head_kv * head_dim)),
        (b + "attn_v.weight", (n_embd, n_head_kv * head_dim)),
        (b + "attn_output.weight", (n_head * head_dim, n_embd)),
    ]
    if bias:
        out += [
            (b + "attn_q.bias", (n_head * head_dim,)),
            (b + "attn_k.bias", (n_head_kv * head_dim,)),
            (b + "attn_v.bias", (n_head_kv * head_dim,)),
        ]
    return out


def _mamba2_mixer(i: int, n_embd: int, p: Mapping[str, Any], *, d_in_proj: int) -> TensorList:
    b = f"blk.{i}."
    d_inner, d_state, n_group, n_head = p["ssm_d_inner"], p["ssm_d_state"], p["ssm_n_group"], p["ssm_dt_rank"]
    conv_dim = d_inner + 2 * n_group * d_state
    return [
        (b + "ssm_in.weight", (n_embd, d_in_proj)),
        (b + "ssm_conv1d.weight", (p["ssm_d_conv"], conv_dim)),
        (b + "ssm_conv1d.bias", (conv_dim,)),
        (b + "ssm_dt.bias", (n_head,)),
        (b + "ssm_a", (1, n_head)),
        (b + "ssm_d", (1, n_head)),
        (b + "ssm_norm.weight", (d_inner // n_group, n_group)),
        (b + "ssm_out.weight", (d_inner, n_embd)),
    ]


def _ssm_metadata(arch: str, p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        f"{arch}.ssm.conv_kernel": p["ssm_d_conv"],
        f"{arch}.ssm.inner_size": p["ssm_d_inner"],
        f"{arch}.ssm.state_size": p["ssm_d_state"],
        f"{arch}.ssm.time_step_rank": p["ssm_dt_rank"],
        f"{arch}.ssm.group_count": p["ssm_n_group"],
    }


def _llama(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    a, e, hd = "llama", p["n_embd"], p["n_embd"] // p["n_head"]
    meta = _common(a, p) | {
        f"{a}.feed_forward_length": p["n_ff"],
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": p["n_head_kv"],
        f"{a}.rope.dimension_count": hd,
        f"{a}.rope.freq_base": 500000.0,
    }
    tensors = _embeddings(p, tied=False)
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,))]
        tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd)
        tensors += [
            (b + "ffn_norm.weight", (e,)),
            (b + "ffn_gate.weight", (e, p["n_ff"])),
            (b + "ffn_down.weight", (p["n_ff"], e)),
            (b + "ffn_up.weight", (e, p["n_ff"])),
        ]
    return meta, tensors


def _qwen3moe(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    a, e, hd, ne, nff = "qwen3moe", p["n_embd"], p["head_dim"], p["n_expert"], p["n_ff_exp"]
    meta = _common(a, p) | {
        f"{a}.feed_forward_length": p["n_ff"],
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": p["n_head_kv"],
        f"{a}.attention.key_length": hd,
        f"{a}.attention.value_length": hd,
        f"{a}.rope.freq_base": 1000000.0,
        f"{a}.expert_count": ne,
        f"{a}.expert_used_count": p["n_expert_used"],
        f"{a}.expert_feed_forward_length": nff,
    }
    tensors = _embeddings(p, tied=False)
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,))]
        tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd)
        tensors += [
            (b + "attn_k_norm.weight", (hd,)),
            (b + "attn_q_norm.weight", (hd,)),
            (b + "ffn_norm.weight", (e,)),
            (b + "ffn_gate_inp.weight", (e, ne)),
            (b + "ffn_gate_exps.weight", (e, nff, ne)),
            (b + "ffn_down_exps.weight", (nff, e, ne)),
            (b + "ffn_up_exps.weight", (e, nff, ne)),
        ]
    return meta, tensors


def _gemma3(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    a, e, hd = "gemma3", p["n_embd"], p["head_dim"]
    meta = _common(a, p) | {
        f"{a}.feed_forward_length": p["n_ff"],
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": p["n_head_kv"],
        f"{a}.attention.key_length": hd,
        f"{a}.attention.value_length": hd,
        f"{a}.attention.sliding_window": p["n_swa"],
        f"{a}.rope.freq_base": 1000000.0,
    }
    if p.get("swa_pattern") is not None:
        meta[f"{a}.attention.sliding_window_pattern"] = p["swa_pattern"]
    tensors = _embeddings(p, tied=True)  # gemma ties the output to the token embeddings
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,))]
        tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd)
        tensors += [
            (b + "post_attention_norm.weight", (e,)),
            (b + "attn_k_norm.weight", (hd,)),
            (b + "attn_q_norm.weight", (hd,)),
            (b + "ffn_norm.weight", (e,)),
            (b + "ffn_gate.weight", (e, p["n_ff"])),
            (b + "ffn_up.weight", (e, p["n_ff"])),
            (b + "ffn_down.weight", (p["n_ff"], e)),
            (b + "post_ffw_norm.weight", (e,)),
        ]
    return meta, tensors


def _gpt_oss(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    a, e, hd, ne, nff = "gpt-oss", p["n_embd"], p["head_dim"], p["n_expert"], p["n_ff_exp"]
    meta = _common(a, p) | {
        f"{a}.feed_forward_length": nff,
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": p["n_head_kv"],
        f"{a}.attention.key_length": hd,
        f"{a}.attention.value_length": hd,
        f"{a}.rope.dimension_count": hd,
        f"{a}.rope.freq_base": 150000.0,
        f"{a}.attention.sliding_window": p["n_swa"],
        f"{a}.expert_count": ne,
        f"{a}.expert_used_count": p["n_expert_used"],
        f"{a}.expert_feed_forward_length": nff,
    }
    meta[f"{a}.attention.layer_norm_rms_epsilon"] = 1e-5
    tensors = _embeddings(p, tied=False)
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,)), (b + "post_attention_norm.weight", (e,))]
        tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd, bias=True)
        tensors += [
            (b + "attn_output.bias", (e,)),
            (b + "attn_sinks.weight", (p["n_head"],)),
            (b + "ffn_gate_inp.weight", (e, ne)),
            (b + "ffn_gate_inp.bias", (ne,)),
            (b + "ffn_gate_exps.weight", (e, nff, ne)),
            (b + "ffn_down_exps.weight", (nff, e, ne)),
            (b + "ffn_up_exps.weight", (e, nff, ne)),
            (b + "ffn_gate_exps.bias", (nff, ne)),
            (b + "ffn_down_exps.bias", (e, ne)),
            (b + "ffn_up_exps.bias", (nff, ne)),
        ]
    return meta, tensors


def _nemotron_h_moe(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    """Hybrid Mamba-2 + attention + latent MoE; ``pattern``: M = Mamba-2, * = attention, E = MoE."""
    a, e, pattern = "nemotron_h_moe", p["n_embd"], p["pattern"]
    if len(pattern) != p["n_layer"]:
        raise ValueError(f"pattern {pattern!r} has {len(pattern)} layers, n_layer is {p['n_layer']}")
    n_nextn = p["n_nextn"]
    n_all = len(pattern) + n_nextn
    ne, nff, latent, hd = p["n_expert"], p["n_ff_exp"], p["moe_latent_size"], p["n_embd"] // p["n_head"]
    moe_e = latent or e
    head_kv = [p["n_head_kv"] if c == "*" else 0 for c in pattern] + [p["n_head_kv"]] * n_nextn
    ff = [p["n_ff"] if c == "E" else 0 for c in pattern] + [0] * n_nextn
    meta = _common(a, p) | _ssm_metadata(a, p)
    meta |= {
        f"{a}.block_count": n_all,
        f"{a}.feed_forward_length": ff,
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": head_kv,
        f"{a}.attention.key_length": hd,
        f"{a}.attention.value_length": hd,
        f"{a}.attention.layer_norm_epsilon": 1e-5,
        f"{a}.expert_count": ne,
        f"{a}.expert_used_count": p["n_expert_used"],
        f"{a}.expert_feed_forward_length": nff,
        f"{a}.expert_shared_feed_forward_length": p["n_ff_shexp"],
        f"{a}.expert_shared_count": 1,
        f"{a}.expert_weights_norm": True,
        f"{a}.expert_weights_scale": 2.5,
    }
    if latent:
        meta[f"{a}.moe_latent_size"] = latent
    if n_nextn:
        meta[f"{a}.nextn_predict_layers"] = n_nextn
    d_inner, g, s, h = p["ssm_d_inner"], p["ssm_n_group"], p["ssm_d_state"], p["ssm_dt_rank"]
    d_in_proj = 2 * d_inner + 2 * g * s + h

    def moe(b: str) -> TensorList:
        out: TensorList = [
            (b + "ffn_gate_inp.weight", (e, ne)),
            (b + "exp_probs_b.bias", (ne,)),
        ]
        if latent:
            out += [(b + "ffn_latent_down.weight", (e, latent)), (b + "ffn_latent_up.weight", (latent, e))]
        out += [
            (b + "ffn_down_exps.weight", (nff, moe_e, ne)),
            (b + "ffn_up_exps.weight", (moe_e, nff, ne)),
            (b + "ffn_down_shexp.weight", (p["n_ff_shexp"], e)),
            (b + "ffn_up_shexp.weight", (e, p["n_ff_shexp"])),
        ]
        return out

    tensors = _embeddings(p, tied=False)
    for i, kind in enumerate(pattern):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,))]
        if kind == "M":
            tensors += _mamba2_mixer(i, e, p, d_in_proj=d_in_proj)
        elif kind == "*":
            tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd)
        elif kind == "E":
            tensors += moe(b)
        else:
            raise ValueError(f"unknown layer kind {kind!r} in pattern {pattern!r}")
    for i in range(len(pattern), n_all):
        b = f"blk.{i}."
        tensors += [
            (b + "nextn.enorm.weight", (e,)),
            (b + "nextn.hnorm.weight", (e,)),
            (b + "nextn.eh_proj.weight", (2 * e, e)),
            (b + "nextn.shared_head_norm.weight", (e,)),
            (b + "attn_norm.weight", (e,)),
        ]
        tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd)
        tensors += [(b + "post_attention_norm.weight", (e,))]
        tensors += moe(b)
    return meta, tensors


def _mamba2(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    a, e = "mamba2", p["n_embd"]
    meta = _common(a, p) | _ssm_metadata(a, p)
    d_inner, g, s, h = p["ssm_d_inner"], p["ssm_n_group"], p["ssm_d_state"], p["ssm_dt_rank"]
    d_in_proj = d_inner + (d_inner + 2 * g * s) + h
    tensors = _embeddings(p, tied=False)
    for i in range(p["n_layer"]):
        tensors += [(f"blk.{i}.attn_norm.weight", (e,))]
        tensors += _mamba2_mixer(i, e, p, d_in_proj=d_in_proj)
    return meta, tensors


def _granitehybrid(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    """Granite 4.0 hybrid: Mamba-2 layers (head_count_kv 0) and attention layers, dense FFN on every layer."""
    a, e, pattern = "granitehybrid", p["n_embd"], p["pattern"]
    if len(pattern) != p["n_layer"]:
        raise ValueError(f"pattern {pattern!r} has {len(pattern)} layers, n_layer is {p['n_layer']}")
    hd = e // p["n_head"]
    meta = _common(a, p) | _ssm_metadata(a, p)
    meta |= {
        f"{a}.feed_forward_length": p["n_ff"],
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": [p["n_head_kv"] if c == "*" else 0 for c in pattern],
        f"{a}.rope.dimension_count": hd,
    }
    d_inner, g, s, h = p["ssm_d_inner"], p["ssm_n_group"], p["ssm_d_state"], p["ssm_dt_rank"]
    d_in_proj = 2 * d_inner + 2 * g * s + h
    tensors = _embeddings(p, tied=False)
    for i, kind in enumerate(pattern):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,))]
        if kind == "M":
            tensors += _mamba2_mixer(i, e, p, d_in_proj=d_in_proj)
        elif kind == "*":
            tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd)
        else:
            raise ValueError(f"unknown layer kind {kind!r} in pattern {pattern!r}")
        tensors += [
            (b + "ffn_norm.weight", (e,)),
            (b + "ffn_gate.weight", (e, p["n_ff"])),
            (b + "ffn_down.weight", (p["n_ff"], e)),
            (b + "ffn_up.weight", (e, p["n_ff"])),
        ]
    return meta, tensors


def _dense(
    arch: str, p: dict[str, Any], *, bias: bool = False, qk_norm: bool = False
) -> tuple[dict[str, Any], TensorList]:
    """qwen2 (Q/K/V biases), qwen3 (per-head Q/K norms, head_dim apart from n_embd / n_head), mistral3."""
    e, hd = p["n_embd"], p["head_dim"]
    meta = _common(arch, p) | {
        f"{arch}.feed_forward_length": p["n_ff"],
        f"{arch}.attention.head_count": p["n_head"],
        f"{arch}.attention.head_count_kv": p["n_head_kv"],
        f"{arch}.attention.key_length": hd,
        f"{arch}.attention.value_length": hd,
        f"{arch}.rope.freq_base": 1000000.0,
    }
    if p.get("attn_temp_scale"):  # Ministral 3 / Mistral Small 3.x: llama 4 attention temperature tuning
        meta[f"{arch}.attention.temperature_scale"] = p["attn_temp_scale"]
        meta[f"{arch}.rope.scaling.original_context_length"] = p["n_ctx"]
    tensors = _embeddings(p, tied=False)
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,))]
        tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd, bias=bias)
        if qk_norm:
            tensors += [(b + "attn_k_norm.weight", (hd,)), (b + "attn_q_norm.weight", (hd,))]
        tensors += [
            (b + "ffn_norm.weight", (e,)),
            (b + "ffn_gate.weight", (e, p["n_ff"])),
            (b + "ffn_down.weight", (p["n_ff"], e)),
            (b + "ffn_up.weight", (e, p["n_ff"])),
        ]
    return meta, tensors


def _qwen2(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    return _dense("qwen2", p, bias=True)


def _qwen3(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    return _dense("qwen3", p, qk_norm=True)


def _mistral3(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    return _dense("mistral3", p)


def _phi3(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    """Phi-3 / Phi-4: fused QKV projection, fused gate+up FFN (``ffn_up`` is 2 * n_ff wide)."""
    a, e = "phi3", p["n_embd"]
    hd = e // p["n_head"]
    meta = _common(a, p) | {
        f"{a}.feed_forward_length": p["n_ff"],
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": p["n_head_kv"],
        f"{a}.rope.dimension_count": hd,
        f"{a}.rope.freq_base": 250000.0,
    }
    tensors = _embeddings(p, tied=False)
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", (e,)),
            (b + "attn_qkv.weight", (e, hd * (p["n_head"] + 2 * p["n_head_kv"]))),
            (b + "attn_output.weight", (e, e)),
            (b + "ffn_norm.weight", (e,)),
            (b + "ffn_down.weight", (p["n_ff"], e)),
            (b + "ffn_up.weight", (e, 2 * p["n_ff"])),
        ]
    return meta, tensors


def _moe_block(b: str, e: int, p: Mapping[str, Any], *, probs_bias: bool) -> TensorList:
    """Router, routed experts and the shared expert of a DeepSeek-style MoE layer."""
    ne, nff, nsh = p["n_expert"], p["n_ff_exp"], p["n_ff_exp"] * p["n_expert_shared"]
    out: TensorList = [(b + "ffn_gate_inp.weight", (e, ne))]
    if probs_bias:
        out.append((b + "exp_probs_b.bias", (ne,)))
    out += [
        (b + "ffn_gate_exps.weight", (e, nff, ne)),
        (b + "ffn_down_exps.weight", (nff, e, ne)),
        (b + "ffn_up_exps.weight", (e, nff, ne)),
        (b + "ffn_gate_shexp.weight", (e, nsh)),
        (b + "ffn_down_shexp.weight", (nsh, e)),
        (b + "ffn_up_shexp.weight", (e, nsh)),
    ]
    return out


def _nextn_block(b: str, e: int) -> TensorList:
    return [
        (b + "nextn.eh_proj.weight", (2 * e, e)),
        (b + "nextn.enorm.weight", (e,)),
        (b + "nextn.hnorm.weight", (e,)),
        (b + "nextn.shared_head_norm.weight", (e,)),
    ]


def _moe_metadata(a: str, p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        f"{a}.feed_forward_length": p["n_ff"],
        f"{a}.expert_count": p["n_expert"],
        f"{a}.expert_used_count": p["n_expert_used"],
        f"{a}.expert_feed_forward_length": p["n_ff_exp"],
        f"{a}.expert_shared_count": p["n_expert_shared"],
        f"{a}.leading_dense_block_count": p["n_dense_lead"],
        f"{a}.expert_weights_scale": 2.5,
        f"{a}.expert_weights_norm": True,
        f"{a}.expert_gating_func": 2,  # LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID
    }


def _glm4moe(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    """GLM-4.5 / 4.6: Q/K/V biases, partial RoPE, dense lead layers, sigmoid router with a shared
    expert, and ``n_nextn`` next-token-prediction layers after the trunk (not loaded by default)."""
    a, e, hd = "glm4moe", p["n_embd"], p["head_dim"]
    n_nextn = p["n_nextn"]
    n_all = p["n_layer"] + n_nextn
    meta = _common(a, p) | _moe_metadata(a, p)
    meta |= {
        f"{a}.block_count": n_all,
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": p["n_head_kv"],
        f"{a}.attention.key_length": hd,
        f"{a}.attention.value_length": hd,
        f"{a}.rope.dimension_count": hd // 2,
        f"{a}.rope.freq_base": 1000000.0,
    }
    if n_nextn:
        meta[f"{a}.nextn_predict_layers"] = n_nextn
    tensors = _embeddings(p, tied=False)
    for i in range(n_all):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,))]
        tensors += _attention(i, e, p["n_head"], p["n_head_kv"], hd, bias=True)
        tensors += [(b + "post_attention_norm.weight", (e,))]
        if i < p["n_dense_lead"]:
            tensors += [
                (b + "ffn_gate.weight", (e, p["n_ff"])),
                (b + "ffn_down.weight", (p["n_ff"], e)),
                (b + "ffn_up.weight", (e, p["n_ff"])),
            ]
        else:
            tensors += _moe_block(b, e, p, probs_bias=True)
        if i >= p["n_layer"]:
            tensors += _nextn_block(b, e)
    return meta, tensors


def _deepseek2(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    """DeepSeek V3 / R1, Kimi K2: multi-head latent attention (low-rank Q, compressed KV with the
    K/V up-projections split per head for absorption), dense lead layers, grouped sigmoid router
    with a bias and a shared expert."""
    a, e, nh = "deepseek2", p["n_embd"], p["n_head"]
    q_lora, kv_lora, rope, nope, v_dim = p["q_lora_rank"], p["kv_lora_rank"], p["rope_dim"], p["nope_dim"], p["v_dim"]
    meta = _common(a, p) | _moe_metadata(a, p)
    meta |= {
        f"{a}.attention.head_count": nh,
        f"{a}.attention.head_count_kv": 1,
        f"{a}.attention.key_length": kv_lora + rope,
        f"{a}.attention.value_length": kv_lora,
        f"{a}.attention.key_length_mla": nope + rope,
        f"{a}.attention.value_length_mla": v_dim,
        f"{a}.attention.q_lora_rank": q_lora,
        f"{a}.attention.kv_lora_rank": kv_lora,
        f"{a}.rope.dimension_count": rope,
        f"{a}.rope.freq_base": 10000.0,
    }
    if p.get("n_expert_groups"):
        meta[f"{a}.expert_group_count"] = p["n_expert_groups"]
        meta[f"{a}.expert_group_used_count"] = p["n_group_used"]
    tensors = _embeddings(p, tied=False)
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_norm.weight", (e,)),
            (b + "attn_q_a_norm.weight", (q_lora,)),
            (b + "attn_kv_a_norm.weight", (kv_lora,)),
            (b + "attn_q_a.weight", (e, q_lora)),
            (b + "attn_q_b.weight", (q_lora, nh * (nope + rope))),
            (b + "attn_kv_a_mqa.weight", (e, kv_lora + rope)),
            (b + "attn_k_b.weight", (nope, kv_lora, nh)),
            (b + "attn_v_b.weight", (kv_lora, v_dim, nh)),
            (b + "attn_output.weight", (nh * v_dim, e)),
            (b + "ffn_norm.weight", (e,)),
        ]
        if i < p["n_dense_lead"]:
            tensors += [
                (b + "ffn_gate.weight", (e, p["n_ff"])),
                (b + "ffn_down.weight", (p["n_ff"], e)),
                (b + "ffn_up.weight", (e, p["n_ff"])),
            ]
        else:
            tensors += _moe_block(b, e, p, probs_bias=True)
    return meta, tensors


def _qwen3next(p: dict[str, Any]) -> tuple[dict[str, Any], TensorList]:
    """Qwen3-Next: gated delta net layers (fused QKV and gate projections) with one gated full
    attention layer every ``full_attention_interval``, MoE with a gated shared expert on every
    layer, and ``n_nextn`` next-token-prediction layers (not loaded by default)."""
    a, e, hd = "qwen3next", p["n_embd"], p["head_dim"]
    n_nextn, interval = p["n_nextn"], p["full_attention_interval"]
    n_all = p["n_layer"] + n_nextn
    ne, nff, nsh = p["n_expert"], p["n_ff_exp"], p["n_ff_shexp"]
    d_state, n_k, n_v = p["ssm_d_state"], p["ssm_n_group"], p["ssm_dt_rank"]
    key_dim, value_dim = d_state * n_k, d_state * n_v
    meta = _common(a, p) | _ssm_metadata(a, p)
    meta |= {
        f"{a}.block_count": n_all,
        f"{a}.feed_forward_length": p["n_ff"],
        f"{a}.attention.head_count": p["n_head"],
        f"{a}.attention.head_count_kv": p["n_head_kv"],
        f"{a}.attention.key_length": hd,
        f"{a}.attention.value_length": hd,
        f"{a}.rope.dimension_count": hd // 4,
        f"{a}.rope.freq_base": 10000000.0,
        f"{a}.expert_count": ne,
        f"{a}.expert_used_count": p["n_expert_used"],
        f"{a}.expert_feed_forward_length": nff,
        f"{a}.expert_shared_feed_forward_length": nsh,
        f"{a}.full_attention_interval": interval,
    }
    meta[f"{a}.ssm.inner_size"] = value_dim
    if n_nextn:
        meta[f"{a}.nextn_predict_layers"] = n_nextn
    tensors = _embeddings(p, tied=False)
    for i in range(n_all):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (e,)), (b + "post_attention_norm.weight", (e,))]
        if i < p["n_layer"] and (i + 1) % interval:
            tensors += [
                (b + "attn_qkv.weight", (e, 2 * key_dim + value_dim)),
                (b + "attn_gate.weight", (e, value_dim)),
                (b + "ssm_conv1d.weight", (p["ssm_d_conv"], 2 * key_dim + value_dim)),
                (b + "ssm_dt.bias", (n_v,)),
                (b + "ssm_a", (n_v,)),
                (b + "ssm_ba.weight", (e, 2 * n_v)),
                (b + "ssm_norm.weight", (d_state,)),
                (b + "ssm_out.weight", (value_dim, e)),
            ]
        else:
            tensors += [
                (b + "attn_q.weight", (e, 2 * hd * p["n_head"])),
                (b + "attn_k.weight", (e, hd * p["n_head_kv"])),
                (b + "attn_v.weight", (e, hd * p["n_head_kv"])),
                (b + "attn_output.weight", (hd * p["n_head"], e)),
                (b + "attn_q_norm.weight", (hd,)),
                (b + "attn_k_norm.weight", (hd,)),
            ]
        tensors += [
            (b + "ffn_gate_inp.weight", (e, ne)),
            (b + "ffn_gate_exps.weight", (e, nff, ne)),
            (b + "ffn_down_exps.weight", (nff, e, ne)),
            (b + "ffn_up_exps.weight", (e, nff, ne)),
            (b + "ffn_gate_inp_shexp.weight", (e,)),
            (b + "ffn_gate_shexp.weight", (e, nsh)),
            (b + "ffn_down_shexp.weight", (nsh, e)),
            (b + "ffn_up_shexp.weight", (e, nsh)),
        ]
        if i >= p["n_layer"]:
            tensors += _nextn_block(b, e)
    return meta, tensors


_SSM_DEFAULTS = {"ssm_d_conv": 4, "ssm_d_inner": 512, "ssm_d_state": 64, "ssm_n_group": 2, "ssm_dt_rank": 8}

# arch -> (builder, default sizes, default matrix dtype, per-tensor type overrides)
_Builder = Callable[[dict[str, Any]], tuple[dict[str, Any], TensorList]]
_ARCHS: dict[str, tuple[_Builder, dict[str, Any]]] = {
    "llama": (_llama, {"n_embd": 256, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 512}),
    "qwen3moe": (
        _qwen3moe,
        {
            "n_embd": 256,
            "n_layer": 2,
            "n_head": 8,
            "n_head_kv": 2,
            "head_dim": 64,
            "n_ff": 512,
            "n_expert": 8,
            "n_expert_used": 2,
            "n_ff_exp": 256,
        },
    ),
    "gemma3": (
        _gemma3,
        {
            "n_embd": 256,
            "n_layer": 6,
            "n_head": 4,
            "n_head_kv": 1,
            "head_dim": 64,
            "n_ff": 512,
            "n_swa": 64,
            "swa_pattern": None,
        },
    ),
    "gpt-oss": (
        _gpt_oss,
        {
            "n_embd": 256,
            "n_layer": 2,
            "n_head": 8,
            "n_head_kv": 2,
            "head_dim": 64,
            "n_expert": 4,
            "n_expert_used": 2,
            "n_ff_exp": 256,
            "n_swa": 128,
        },
    ),
    "nemotron_h_moe": (
        _nemotron_h_moe,
        {
            "n_embd": 512,
            "n_layer": 8,
            "pattern": "MEMEM*EM",
            "n_head": 8,
            "n_head_kv": 2,
            "n_ff": 256,
            "n_expert": 8,
            "n_expert_used": 2,
            "n_ff_exp": 256,
            "n_ff_shexp": 512,
            "moe_latent_size": 256,
            "n_nextn": 0,
        }
        | _SSM_DEFAULTS
        | {"ssm_d_inner": 1024, "ssm_dt_rank": 16},
    ),
    "mamba2": (_mamba2, {"n_embd": 256, "n_layer": 2} | _SSM_DEFAULTS),
    "granitehybrid": (
        _granitehybrid,
        {"n_embd": 256, "n_layer": 4, "pattern": "MM*M", "n_head": 4, "n_head_kv": 2, "n_ff": 512} | _SSM_DEFAULTS,
    ),
    "qwen2": (_qwen2, {"n_embd": 256, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "head_dim": 64, "n_ff": 512}),
    "qwen3": (_qwen3, {"n_embd": 256, "n_layer": 2, "n_head": 8, "n_head_kv": 2, "head_dim": 64, "n_ff": 512}),
    "mistral3": (
        _mistral3,
        {"n_embd": 256, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "head_dim": 64, "n_ff": 512, "attn_temp_scale": 0.1},
    ),
    "phi3": (_phi3, {"n_embd": 256, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 512}),
    "glm4moe": (
        _glm4moe,
        {
            "n_embd": 256,
            "n_layer": 3,
            "n_head": 8,
            "n_head_kv": 2,
            "head_dim": 64,
            "n_ff": 512,
            "n_expert": 8,
            "n_expert_used": 2,
            "n_ff_exp": 256,
            "n_expert_shared": 1,
            "n_dense_lead": 1,
            "n_nextn": 1,
        },
    ),
    "deepseek2": (
        _deepseek2,
        {
            "n_embd": 256,
            "n_layer": 3,
            "n_head": 8,
            "q_lora_rank": 256,
            "kv_lora_rank": 256,
            "rope_dim": 32,
            "nope_dim": 64,
            "v_dim": 64,
            "n_ff": 512,
            "n_expert": 8,
            "n_expert_used": 2,
            "n_ff_exp": 256,
            "n_expert_shared": 1,
            "n_dense_lead": 1,
            "n_expert_groups": 4,
            "n_group_used": 2,
        },
    ),
    "qwen3next": (
        _qwen3next,
        {
            "n_embd": 256,
            "n_layer": 4,
            "full_attention_interval": 4,
            "n_head": 4,
            "n_head_kv": 2,
            "head_dim": 64,
            "n_ff": 512,
            "n_expert": 8,
            "n_expert_used": 2,
            "n_ff_exp": 256,
            "n_ff_shexp": 256,
            "n_nextn": 1,
            "ssm_d_conv": 4,
            "ssm_d_inner": 256,
            "ssm_d_state": 64,
            "ssm_n_group": 2,
            "ssm_dt_rank": 4,
        },
    ),
}
# ARCHITECTURES: the first seven, which every reader test covers; MORE_ARCHITECTURES: dense and
# MoE transformers added for the compute-graph checks; ALL_ARCHITECTURES: both
ALL_ARCHITECTURES: tuple[str, ...] = tuple(_ARCHS)
MORE_ARCHITECTURES: tuple[str, ...] = ("qwen2", "qwen3", "mistral3", "phi3", "glm4moe", "deepseek2", "qwen3next")
ARCHITECTURES: tuple[str, ...] = tuple(a for a in ALL_ARCHITECTURES if a not in MORE_ARCHITECTURES)


def model_layout(arch: str, **overrides: Any) -> tuple[dict[str, Any], TensorList]:
    """The metadata and tensor list (name, GGML shape) ``make_model`` would write."""
    if arch not in _ARCHS:
        raise ValueError(f"no synthetic model for {arch!r}; known: {', '.join(ALL_ARCHITECTURES)}")
    builder, defaults = _ARCHS[arch]
    params = {"n_vocab": 320, "n_ctx": 4096} | defaults | overrides
    if "pattern" in overrides and "n_layer" not in overrides:
        params["n_layer"] = len(overrides["pattern"])
    return builder(params)


def make_model(
    path: str | Path,
    arch: str,
    *,
    dtype: gguf.GGMLQuantizationType | None = None,
    tensor_types: Mapping[str, gguf.GGMLQuantizationType] | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
    seed: int = 0,
    split_max_tensors: int = 0,
    **overrides: Any,
) -> Path:
    """Write a small ``arch`` model to ``path`` and return its path (the first part when split).

    ``overrides`` change sizes (``n_embd``, ``n_layer``, ``n_head``, ``n_head_kv``, ``n_ff``,
    ``n_vocab``, ``n_ctx``, ``n_expert``, ``pattern`` for hybrids, ``n_nextn``, ...). gpt-oss gets
    MXFP4 routed experts and F16 elsewhere by default (file type MXFP4_MOE), as published.
    """
    meta, tensors = model_layout(arch, **overrides)
    file_type: int | None = None
    if arch == "gpt-oss" and dtype is None and tensor_types is None:
        dtype, tensor_types = F16, {"*_exps.weight": MXFP4}
        file_type = int(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)
    if extra_metadata:
        meta |= dict(extra_metadata)
    return write_gguf(
        path,
        arch,
        meta,
        tensors,
        dtype=dtype if dtype is not None else F32,
        tensor_types=tensor_types,
        file_type=file_type,
        seed=seed,
        split_max_tensors=split_max_tensors,
    )
