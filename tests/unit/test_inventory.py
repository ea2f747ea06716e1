"""Tensor inventories from config.json against independently published parameter counts."""

from __future__ import annotations

import math
from typing import Any

import pytest

from servefit.errors import ModelError, UnknownQuantError
from servefit.inventory import hparams_from_config, quant_ladder, spec_from_config, tensor_shapes
from servefit.model import TensorRole

NEMOTRON_3_SUPER: dict[str, Any] = {
    "architectures": ["NemotronHForCausalLM"],
    "model_type": "nemotron_h",
    "num_hidden_layers": 88,
    "hybrid_override_pattern": (
        "MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME"
    ),
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "vocab_size": 131072,
    "max_position_embeddings": 262144,
    "n_routed_experts": 512,
    "num_experts_per_tok": 22,
    "moe_intermediate_size": 2688,
    "n_shared_experts": 1,
    "moe_shared_expert_intermediate_size": 5376,
    "moe_latent_size": 1024,
    "mamba_num_heads": 128,
    "mamba_head_dim": 64,
    "ssm_state_size": 128,
    "n_groups": 8,
    "conv_kernel": 4,
    "num_nextn_predict_layers": 1,
    "tie_word_embeddings": False,
}

LLAMA_31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": False,
}


def _params(config: dict[str, Any], *, skip: tuple[str, ...] = ()) -> int:
    arch, hp = hparams_from_config(config)
    return sum(math.prod(s) for n, s in tensor_shapes(arch, hp, config) if not n.startswith(skip))


def test_nemotron_3_super_element_count_matches_the_checkpoint() -> None:
    # NVIDIA-NeMo/Megatron-Bridge examples/model_verification_cards/nemotron-3-super-120b-a12b/card.yaml:
    # "42,683 source tensors and 123,611,033,088 elements" (MTP head included, as the converter keeps it)
    assert _params(NEMOTRON_3_SUPER) == 123_611_033_088


def test_llama_31_8b_parameter_count_matches_the_checkpoint() -> None:
    # meta-llama/Llama-3.1-8B-Instruct safetensors metadata: 8,030,261,248 parameters; the GGUF adds
    # the 64 rope_freqs factors the converter computes from rope_scaling
    assert _params(LLAMA_31_8B, skip=("rope_freqs",)) == 8_030_261_248
    arch, hp = hparams_from_config(LLAMA_31_8B)
    assert ("rope_freqs.weight", (64,)) in tensor_shapes(arch, hp, LLAMA_31_8B)


def test_mistral_small_text_parameters_match() -> None:
    # Mistral-Small-3.2-24B-Instruct-2506: 23,572,403,200 text parameters (../shared/data/models.yaml
    # field_sources); the multimodal config nests the text model under text_config
    config = {
        "architectures": ["Mistral3ForConditionalGeneration"],
        "model_type": "mistral3",
        "text_config": {
            "model_type": "mistral",
            "hidden_size": 5120,
            "num_hidden_layers": 40,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "intermediate_size": 32768,
            "vocab_size": 131072,
        },
        "vision_config": {"hidden_size": 1024},
    }
    assert hparams_from_config(config)[0] == "mistral3"
    assert _params(config) == 23_572_403_200


def test_gpt_oss_parameter_counts_match_llama_bench() -> None:
    # ggml-org/llama.cpp benches/dgx-spark.md: gpt-oss 20B 20.91 B params, 120B 116.83 B params
    base = {
        "model_type": "gpt_oss",
        "hidden_size": 2880,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "intermediate_size": 2880,
        "vocab_size": 201088,
        "num_experts_per_tok": 4,
    }
    assert round(_params(dict(base, num_hidden_layers=24, num_local_experts=32)) / 1e7) == 2091
    assert round(_params(dict(base, num_hidden_layers=36, num_local_experts=128)) / 1e7) == 11683


def test_nemotron_hparams_follow_the_layer_pattern() -> None:
    arch, hp = hparams_from_config(NEMOTRON_3_SUPER)
    assert arch == "nemotron_h_moe"
    assert hp.n_layer == 89 and hp.n_nextn_layer == 1
    pattern = NEMOTRON_3_SUPER["hybrid_override_pattern"]
    assert sum(hp.recurrent) == pattern.count("M") == 40
    assert sum(1 for kv in hp.n_head_kv if kv) == pattern.count("*") + 1
    assert hp.ssm_d_inner == 128 * 64 and hp.moe_latent_size == 1024


def test_spec_from_config_builds_layers_and_roles() -> None:
    spec = spec_from_config(NEMOTRON_3_SUPER, "Q4_K_S", model_id="nemotron-3-super-120b-a12b")
    assert spec.architecture == "nemotron_h_moe" and spec.ftype == "Q4_K_S"
    assert spec.is_moe and spec.model_id == "nemotron-3-super-120b-a12b"
    assert spec.layers[0].kind == "recurrent" and spec.layers[-1].is_nextn
    assert spec.file_bytes > spec.tensor_bytes
    experts = [t for t in spec.tensors if t.role is TensorRole.ROUTED_EXPERTS]
    assert {t.name.split(".")[2] for t in experts} == {"ffn_up_exps", "ffn_down_exps"}


def test_gemma3_multimodal_config_reads_text_config_and_ties_embeddings() -> None:
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34, "head_dim": 256},
        "vision_config": {"hidden_size": 1152},
    }
    arch, hp = hparams_from_config(config)
    assert arch == "gemma3" and hp.n_embd == 2560 and hp.n_vocab == 262208
    names = [n for n, _ in tensor_shapes(arch, hp, config)]
    assert "output.weight" not in names
    assert sum(hp.swa_layers) == 34 - 34 // 6


def test_missing_key_names_the_key() -> None:
    config = dict(LLAMA_31_8B)
    del config["hidden_size"]
    with pytest.raises(ModelError, match="hidden_size"):
        hparams_from_config(config)


def test_unsupported_model_type() -> None:
    with pytest.raises(ModelError, match="unsupported model type 'bert'"):
        hparams_from_config({"model_type": "bert"})
    with pytest.raises(ModelError, match="model_type"):
        hparams_from_config({})


def test_wrong_value_type() -> None:
    config = dict(LLAMA_31_8B, num_hidden_layers="32")
    with pytest.raises(ModelError, match="num_hidden_layers"):
        hparams_from_config(config)


def test_unknown_quant_suggests() -> None:
    with pytest.raises(UnknownQuantError, match="Q4_K_M"):
        spec_from_config(LLAMA_31_8B, "Q4_KM")


def test_quant_ladder_is_ordered_by_bits() -> None:
    ladder = {q.name: q for q in quant_ladder(LLAMA_31_8B)}
    assert "MXFP4_MOE" not in ladder  # dense model
    assert ladder["Q4_K_S"].tensor_bytes < ladder["Q4_K_M"].tensor_bytes < ladder["Q5_K_M"].tensor_bytes
    assert ladder["Q8_0"].tensor_bytes < ladder["F16"].tensor_bytes
    assert all(q.source == "predicted" and q.file_bytes > q.tensor_bytes for q in ladder.values())
