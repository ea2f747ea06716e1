"""Predicted tensor types against llama.cpp's own quantizer, tensor by tensor.

For every supported architecture family, a scaled-down Hugging Face config goes through
``hparams_from_config`` and ``tensor_shapes``; the inventory is written as a GGUF (matrices F16, the
tensors the converter keeps in F32 as F32, gpt-oss experts in MXFP4), loaded by llama.cpp (which
checks every name and shape against the architecture's loader), quantized with
``llama_model_quantize`` to each file type of ``FILE_TYPES``, and the type of every tensor in the
output must equal ``predict_types``. The small dimensions are chosen so that the rules are exercised:
rows that are not multiples of 256 (K-quant fallbacks), at least 9 layers (layer-position rules),
several attention layers (attn_v counters), tied and untied embeddings, next-n layers.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from servefit.inventory import hparams_from_config, tensor_shapes
from servefit.model import Hparams
from servefit.quants import FILE_TYPES, IMATRIX_FILE_TYPES, converter_type, ftype_id, predict_types

llama_cpp = pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.llama

# Small configs with the real structure of each family (HF config.json field names).
SYNTHETIC_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": {  # Llama 3.x: llama3 rope (rope_freqs tensor), GQA 4, ffn rows of 640 (not a multiple of 256)
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "intermediate_size": 288,
        "num_hidden_layers": 10,
        "vocab_size": 320,
        "max_position_embeddings": 4096,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192},
        "tie_word_embeddings": False,
    },
    "llama-tied-mistral": {  # Mistral Small / Llama 3.2 1B: explicit head_dim, GQA 2, tied embeddings
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 64,
        "intermediate_size": 256,
        "num_hidden_layers": 9,
        "vocab_size": 320,
        "tie_word_embeddings": True,
    },
    "mixtral": {  # 8 experts: the n_expert == 8 rules (attn_v/attn_k to Q8_0, attn_output to Q5_K)
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "intermediate_size": 160,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 9,
        "vocab_size": 320,
    },
    "mistral3": {  # Mistral Small 3.1/3.2: multimodal config, text model under text_config
        "architectures": ["Mistral3ForConditionalGeneration"],
        "model_type": "mistral3",
        "text_config": {
            "model_type": "mistral",
            "hidden_size": 256,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "intermediate_size": 256,
            "num_hidden_layers": 9,
            "vocab_size": 320,
        },
        "vision_config": {"hidden_size": 64},
    },
    "llama-80-layers": {  # 80 layers with GQA: LLM_TYPE_70B, attn_v one step up
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "num_attention_heads": 2,
        "head_dim": 64,
        "num_key_value_heads": 1,
        "intermediate_size": 64,
        "num_hidden_layers": 80,
        "vocab_size": 320,
    },
    "qwen2": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 288,
        "num_hidden_layers": 9,
        "vocab_size": 320,
        "tie_word_embeddings": True,
    },
    "qwen3": {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "intermediate_size": 288,
        "num_hidden_layers": 12,
        "vocab_size": 320,
        "tie_word_embeddings": False,
    },
    "qwen3moe": {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "intermediate_size": 512,
        "moe_intermediate_size": 160,
        "num_experts": 6,
        "num_experts_per_tok": 4,
        "num_hidden_layers": 9,
        "vocab_size": 320,
    },
    "qwen3next": {
        "architectures": ["Qwen3NextForCausalLM"],
        "model_type": "qwen3_next",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 64,
        "intermediate_size": 512,
        "moe_intermediate_size": 96,
        "shared_expert_intermediate_size": 160,
        "num_experts": 6,
        "num_experts_per_tok": 4,
        "num_hidden_layers": 8,
        "full_attention_interval": 4,
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 32,
        "linear_value_head_dim": 32,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "vocab_size": 320,
    },
    "gpt-oss": {  # rows of 288 (like gpt-oss' 2880): every K-quant falls back, output to Q8_0; MXFP4 experts
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "hidden_size": 288,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "intermediate_size": 288,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 10,
        "sliding_window": 128,
        "vocab_size": 320,
    },
    "gemma3": {  # multimodal config: the text model is under text_config
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {
            "model_type": "gemma3_text",
            "hidden_size": 256,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "intermediate_size": 256,
            "num_hidden_layers": 12,
            "sliding_window": 64,
            "vocab_size": 320,
        },
    },
    "deepseek2": {  # DeepSeek V3 / Kimi K2: MLA, one dense lead layer, shared expert
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "q_lora_rank": 192,
        "kv_lora_rank": 128,
        "qk_rope_head_dim": 32,
        "qk_nope_head_dim": 64,
        "v_head_dim": 64,
        "intermediate_size": 512,
        "moe_intermediate_size": 160,
        "n_routed_experts": 6,
        "n_shared_experts": 1,
        "num_experts_per_tok": 4,
        "first_k_dense_replace": 1,
        "topk_method": "noaux_tc",
        "num_hidden_layers": 9,
        "num_nextn_predict_layers": 1,
        "vocab_size": 320,
    },
    "glm4moe": {  # GLM-4.5: biases, q/k norm, dense lead layer, shared expert, next-n layer
        "architectures": ["Glm4MoeForCausalLM"],
        "model_type": "glm4_moe",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "intermediate_size": 512,
        "moe_intermediate_size": 160,
        "n_routed_experts": 6,
        "n_shared_experts": 1,
        "num_experts_per_tok": 4,
        "first_k_dense_replace": 1,
        "num_hidden_layers": 9,
        "num_nextn_predict_layers": 1,
        "use_qk_norm": True,
        "attention_bias": True,
        "vocab_size": 320,
    },
    "phi3": {  # Phi-4: fused qkv and gate/up
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 288,
        "num_hidden_layers": 9,
        "vocab_size": 320,
        "max_position_embeddings": 4096,
    },
    "granitehybrid": {  # Granite 4.0 H (MoE): Mamba-2 + attention, shared expert, tied embeddings
        "architectures": ["GraniteMoeHybridForCausalLM"],
        "model_type": "granitemoehybrid",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "intermediate_size": 160,
        "shared_intermediate_size": 288,
        "num_local_experts": 6,
        "num_experts_per_tok": 4,
        "num_hidden_layers": 10,
        "layer_types": ["mamba"] * 4 + ["attention"] + ["mamba"] * 4 + ["attention"],
        "mamba_n_heads": 8,
        "mamba_d_head": 64,
        "mamba_n_groups": 1,
        "mamba_d_state": 16,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
        "vocab_size": 320,
        "tie_word_embeddings": True,
    },
    "nemotron_h": {  # Nemotron-H dense: Mamba-2 + attention + squared-ReLU MLP layers
        "architectures": ["NemotronHForCausalLM"],
        "model_type": "nemotron_h",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "hybrid_override_pattern": "M-M*-M-M*-M-",
        "num_hidden_layers": 12,
        "intermediate_size": 288,
        "mamba_num_heads": 8,
        "mamba_head_dim": 32,
        "ssm_state_size": 16,
        "n_groups": 2,
        "conv_kernel": 4,
        "vocab_size": 320,
    },
    "nemotron_h_moe": {  # Nemotron 3 Super: latent MoE (latent 128, experts 160 wide), MTP block
        "architectures": ["NemotronHForCausalLM"],
        "model_type": "nemotron_h",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "hybrid_override_pattern": "MEM*EMEM*EMEME",
        "num_hidden_layers": 14,
        "n_routed_experts": 6,
        "num_experts_per_tok": 4,
        "moe_intermediate_size": 160,
        "n_shared_experts": 1,
        "moe_shared_expert_intermediate_size": 512,
        "moe_latent_size": 128,
        "mamba_num_heads": 8,
        "mamba_head_dim": 32,
        "ssm_state_size": 16,
        "n_groups": 2,
        "conv_kernel": 4,
        "num_nextn_predict_layers": 1,
        "vocab_size": 320,
        "tie_word_embeddings": False,
    },
}


# llama.cpp's IQ quantizers are slow (seconds per million weights): every family is checked on the
# other file types, and two families that exercise the IQ rules (GQA >= 4 attn_v, first-layers
# ffn_down, IQ4_XS/IQ3_S -> IQ4_NL fallbacks on 160- and 128-wide rows) on the IQ types too.
IQ_FILE_TYPES = ("IQ3_S", "IQ3_M", "IQ4_NL", "IQ4_XS")
IQ_FAMILIES = ("llama", "nemotron_h_moe")
# The 80-layer model is the largest: check it on the file types the 70B rule changes, and a control.
FAMILY_FILE_TYPES: dict[str, list[str]] = {"llama-80-layers": ["Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q6_K"]}


def _int_or_array(values: tuple[int, ...]) -> int | list[int]:
    return values[0] if len(set(values)) == 1 else list(values)


def gguf_metadata(arch: str, hp: Hparams, config: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata keys the converter writes and llama.cpp's loaders read (src/llama-arch.cpp names)."""
    text = {**config, **config.get("text_config", {})}
    a = arch
    head_kv: int | list[int] = _int_or_array(hp.n_head_kv)
    if arch == "qwen3next":
        head_kv = max(hp.n_head_kv)
    rope_dim = hp.n_embd_head_k
    if arch == "deepseek2":
        rope_dim = int(text["qk_rope_head_dim"])
    elif arch == "glm4moe":
        rope_dim = hp.n_embd_head_k // 2
    elif arch == "qwen3next":
        rope_dim = hp.n_embd_head_k // 4
    meta: dict[str, Any] = {
        "tokenizer.ggml.model": "no_vocab",
        f"{a}.vocab_size": hp.n_vocab,
        f"{a}.context_length": hp.n_ctx_train or 4096,
        f"{a}.embedding_length": hp.n_embd,
        f"{a}.block_count": hp.n_layer,
        f"{a}.feed_forward_length": _int_or_array(hp.n_ff),
        f"{a}.attention.head_count": _int_or_array(hp.n_head),
        f"{a}.attention.head_count_kv": head_kv,
        f"{a}.attention.key_length": hp.n_embd_head_k,
        f"{a}.attention.value_length": hp.n_embd_head_v,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{a}.attention.layer_norm_epsilon": 1e-5,
        f"{a}.rope.dimension_count": rope_dim,
        f"{a}.rope.freq_base": 10000.0,
        f"{a}.expert_shared_count": hp.n_expert_shared,
    }
    if hp.n_expert:
        meta |= {
            f"{a}.expert_count": hp.n_expert,
            f"{a}.expert_used_count": hp.n_expert_used,
            f"{a}.expert_feed_forward_length": hp.n_ff_exp,
        }
    if hp.n_ff_shexp:
        meta[f"{a}.expert_shared_feed_forward_length"] = hp.n_ff_shexp
    if hp.n_layer_dense_lead:
        meta[f"{a}.leading_dense_block_count"] = hp.n_layer_dense_lead
    if hp.n_nextn_layer:
        meta[f"{a}.nextn_predict_layers"] = hp.n_nextn_layer
    if hp.moe_latent_size:
        meta[f"{a}.moe_latent_size"] = hp.moe_latent_size
    if hp.n_swa:
        meta[f"{a}.attention.sliding_window"] = hp.n_swa
    if hp.ssm_d_inner:
        meta |= {
            f"{a}.ssm.conv_kernel": hp.ssm_d_conv,
            f"{a}.ssm.inner_size": hp.ssm_d_inner,
            f"{a}.ssm.state_size": hp.ssm_d_state,
            f"{a}.ssm.time_step_rank": hp.ssm_dt_rank,
            f"{a}.ssm.group_count": hp.ssm_n_group,
        }
    if arch == "deepseek2":
        meta |= {
            f"{a}.attention.q_lora_rank": int(text["q_lora_rank"]),
            f"{a}.attention.kv_lora_rank": hp.kv_lora_rank,
            f"{a}.attention.key_length_mla": hp.n_embd_head_k_mla,
            f"{a}.attention.value_length_mla": hp.n_embd_head_v_mla,
            f"{a}.expert_gating_func": 2,
        }
    if arch == "glm4moe":
        meta[f"{a}.expert_gating_func"] = 2
    if arch == "qwen3next":
        meta[f"{a}.full_attention_interval"] = 4
    return meta


def write_model(
    path: Path, arch: str, metadata: Mapping[str, Any], tensors: list[tuple[str, tuple[int, ...]]], types: list[str]
) -> None:
    """A GGUF with random F16/F32 data (MXFP4 blocks where asked) for the given inventory."""
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(path, arch)
    writer.add_uint32("general.file_type", int(gguf.LlamaFileType.MOSTLY_F16))
    for key, value in metadata.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, list(value))
    for (name, shape), ttype in zip(tensors, types, strict=True):
        np_shape = tuple(reversed(shape))
        if ttype == "MXFP4":
            blck, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.MXFP4]
            raw = rng.integers(0, 256, size=(*np_shape[:-1], shape[0] // blck, size), dtype=np.uint8)
            raw[..., 0] = 120  # e8m0 block scale 2^-7
            writer.add_tensor(name, raw.reshape(*np_shape[:-1], -1), raw_dtype=gguf.GGMLQuantizationType.MXFP4)
            continue
        data = rng.standard_normal(np_shape).astype(np.float32) * 0.02
        if name.endswith("ssm_a"):
            data = -np.abs(data) - 0.5
        writer.add_tensor(name, data.astype(np.float16) if ttype == "F16" else data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def quiet_llama() -> Iterator[None]:
    @ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
    def _silent(level: int, text: bytes, user_data: int) -> None:
        del level, text, user_data

    llama_cpp.llama_log_set(_silent, ctypes.c_void_p())
    yield
    llama_cpp.llama_log_set(ctypes.cast(None, type(_silent)), ctypes.c_void_p())


def _source_types(arch: str, tensors: list[tuple[str, tuple[int, ...]]]) -> list[str]:
    types = [converter_type(n, s, "F16") for n, s in tensors]
    if arch == "gpt-oss":
        types = ["MXFP4" if "_exps.weight" in n else t for (n, _), t in zip(tensors, types, strict=True)]
    return types


@pytest.mark.parametrize("family", list(SYNTHETIC_CONFIGS))
def test_predicted_types_match_llama_quantize(family: str, tmp_path: Path, quiet_llama: None) -> None:
    config = SYNTHETIC_CONFIGS[family]
    arch, hp = hparams_from_config(config)
    tensors = tensor_shapes(arch, hp, config)
    sources = _source_types(arch, tensors)
    src = tmp_path / f"{family}-f16.gguf"
    write_model(src, arch, gguf_metadata(arch, hp, config), tensors, sources)

    # llama.cpp accepts the inventory: every tensor it expects, with the shape it expects, and no other
    mparams = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(src).encode(), mparams)
    assert model, f"llama.cpp refused the {family} inventory ({arch})"
    llama_cpp.llama_model_free(model)

    ftypes = FAMILY_FILE_TYPES.get(family) or [
        f for f in FILE_TYPES if (f != "MXFP4_MOE" or hp.n_expert) and (f not in IQ_FILE_TYPES or family in IQ_FAMILIES)
    ]
    mismatches: list[str] = []
    for ftype in ftypes:
        out = tmp_path / f"{family}-{ftype}.gguf"
        qparams = llama_cpp.llama_model_quantize_default_params()
        qparams.ftype = ftype_id(ftype)
        qparams.nthread = 2
        # gpt-oss experts come from the converter in MXFP4: llama-quantize needs --allow-requantize
        qparams.allow_requantize = any(t not in ("F32", "F16", "BF16") for t in sources)
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(qparams))
        assert rc == 0, f"llama_model_quantize failed for {family} {ftype}"
        actual = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
        predicted = predict_types(arch, hp, tensors, ftype, source_types=sources)
        assert set(actual) == {n for n, _ in tensors}
        mismatches += [
            f"{ftype} {name}: predicted {p}, llama.cpp {actual[name]}"
            for (name, _), p in zip(tensors, predicted, strict=True)
            if actual[name] != p
        ]
        out.unlink()
    assert not mismatches, f"{family}: {len(mismatches)} mismatches\n" + "\n".join(mismatches[:40])


def _imatrix(tensors: list[tuple[str, tuple[int, ...]]]) -> tuple[Any, list[Any]]:
    """A llama_model_imatrix_data array (ones) for every matrix, NULL-terminated, and its buffers."""
    entries = [(n, s) for n, s in tensors if len(s) >= 2 and n.endswith(".weight")]
    array = (llama_cpp.llama_model_imatrix_data * (len(entries) + 1))()
    keep: list[Any] = []
    for i, (name, shape) in enumerate(entries):
        size = shape[0] * (shape[2] if len(shape) > 2 else 1)
        data = (ctypes.c_float * size)(*([1.0] * size))
        keep += [data, name.encode()]
        array[i].name = keep[-1]
        array[i].data = ctypes.cast(data, ctypes.POINTER(ctypes.c_float))
        array[i].size = size
    array[len(entries)].name = None
    return array, keep


# A smaller qwen3moe for the IQ1/IQ2 quantizers, the slowest of all: GQA 4 and 4 experts (the two
# conditions of the IQ2 attn_v rule), 8 layers for the first-eighth ffn_down rules.
IMATRIX_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "intermediate_size": 512,
    "moe_intermediate_size": 64,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 8,
    "vocab_size": 320,
}


@pytest.mark.slow
def test_predicted_types_with_imatrix(tmp_path: Path, quiet_llama: None) -> None:
    """With an importance matrix: the IQ1/IQ2/IQ3_XXS file types and the rules that read has_imatrix."""
    config = IMATRIX_CONFIG
    family = "qwen3moe-imatrix"
    arch, hp = hparams_from_config(config)
    tensors = tensor_shapes(arch, hp, config)
    sources = _source_types(arch, tensors)
    src = tmp_path / f"{family}-f16.gguf"
    write_model(src, arch, gguf_metadata(arch, hp, config), tensors, sources)
    imatrix, keep = _imatrix(tensors)
    mismatches: list[str] = []
    for ftype in (*IMATRIX_FILE_TYPES, "Q4_0", "Q5_0", "IQ4_XS"):
        out = tmp_path / f"{family}-{ftype}.gguf"
        qparams = llama_cpp.llama_model_quantize_default_params()
        qparams.ftype = ftype_id(ftype)
        qparams.nthread = 2
        qparams.imatrix = ctypes.cast(imatrix, type(qparams.imatrix))
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(qparams))
        assert rc == 0, f"llama_model_quantize failed for {family} {ftype} with an imatrix"
        actual = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
        predicted = predict_types(arch, hp, tensors, ftype, imatrix=True, source_types=sources)
        mismatches += [
            f"{ftype} {name}: predicted {p}, llama.cpp {actual[name]}"
            for (name, _), p in zip(tensors, predicted, strict=True)
            if actual[name] != p
        ]
        out.unlink()
    del keep
    assert not mismatches, f"{family}: {len(mismatches)} mismatches\n" + "\n".join(mismatches[:40])
