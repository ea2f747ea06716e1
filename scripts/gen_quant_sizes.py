"""Generate docs/quant-sizes.md: predicted GGUF sizes of reference models against published files.

Predictions come from ``servefit.inventory.quant_ladder`` (tensor inventory of llama.cpp's converter +
per-tensor types of llama.cpp's quantizer, exact tensor bytes, estimated header). Published sizes are
the file sizes GGUF publishers print in their repository READMEs, each with its source; they are
rounded to 0.01 GB (10^9 bytes) there, so a difference under 0.01 GB is a match.

Usage: python scripts/gen_quant_sizes.py [--out docs/quant-sizes.md]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servefit.inventory import ARCHITECTURES, hparams_from_config, quant_ladder, tensor_shapes
from servefit.quants import FILE_TYPES, IMATRIX_FILE_TYPES

# Hyperparameters (Hugging Face config.json field names) of the reference models, transcribed from
# ../shared/data/models.yaml (each entry's source is listed there) unless said otherwise.
CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "Qwen3-4B": (
        {
            "model_type": "qwen3",
            "hidden_size": 2560,
            "num_hidden_layers": 36,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "intermediate_size": 9728,
            "vocab_size": 151936,
            "tie_word_embeddings": True,
        },
        "a public GitHub file checking 'the exact Qwen3-4B architecture' (2560/9728/36/32/8/128/151936); "
        "tie_word_embeddings true as in Qwen3 small-model configs",
    ),
    "Qwen3-8B": (
        {
            "model_type": "qwen3",
            "hidden_size": 4096,
            "num_hidden_layers": 36,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "intermediate_size": 12288,
            "vocab_size": 151936,
            "tie_word_embeddings": False,
        },
        "models.yaml: Qwen/Qwen3-8B",
    ),
    "Qwen3-30B-A3B": (
        {
            "model_type": "qwen3_moe",
            "hidden_size": 2048,
            "num_hidden_layers": 48,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "intermediate_size": 6144,
            "vocab_size": 151936,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "moe_intermediate_size": 768,
            "tie_word_embeddings": False,
        },
        "models.yaml: Qwen/Qwen3-30B-A3B",
    ),
    "phi-4": (
        {
            "model_type": "phi3",
            "hidden_size": 5120,
            "num_hidden_layers": 40,
            "num_attention_heads": 40,
            "num_key_value_heads": 10,
            "intermediate_size": 17920,
            "vocab_size": 100352,
            "max_position_embeddings": 16384,
            "tie_word_embeddings": False,
        },
        "models.yaml: microsoft/phi-4",
    ),
    "gpt-oss-20b": (
        {
            "model_type": "gpt_oss",
            "hidden_size": 2880,
            "num_hidden_layers": 24,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "intermediate_size": 2880,
            "vocab_size": 201088,
            "num_local_experts": 32,
            "num_experts_per_tok": 4,
            "sliding_window": 128,
        },
        "models.yaml: openai/gpt-oss-20b",
    ),
    "gpt-oss-120b": (
        {
            "model_type": "gpt_oss",
            "hidden_size": 2880,
            "num_hidden_layers": 36,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "intermediate_size": 2880,
            "vocab_size": 201088,
            "num_local_experts": 128,
            "num_experts_per_tok": 4,
            "sliding_window": 128,
        },
        "models.yaml: openai/gpt-oss-120b",
    ),
    "Llama-3.1-8B": (
        {
            "model_type": "llama",
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 128256,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
            "tie_word_embeddings": False,
        },
        "models.yaml: meta-llama/Llama-3.1-8B-Instruct",
    ),
    "Llama-3.1-70B": (
        {
            "model_type": "llama",
            "hidden_size": 8192,
            "num_hidden_layers": 80,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "intermediate_size": 28672,
            "vocab_size": 128256,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
            "tie_word_embeddings": False,
        },
        "models.yaml: meta-llama/Llama-3.1-70B-Instruct",
    ),
    "Qwen3-32B": (
        {
            "model_type": "qwen3",
            "hidden_size": 5120,
            "num_hidden_layers": 64,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "intermediate_size": 25600,
            "vocab_size": 151936,
            "tie_word_embeddings": False,
        },
        "models.yaml: Qwen/Qwen3-32B",
    ),
    "Qwen3-235B-A22B": (
        {
            "model_type": "qwen3_moe",
            "hidden_size": 4096,
            "num_hidden_layers": 94,
            "num_attention_heads": 64,
            "num_key_value_heads": 4,
            "head_dim": 128,
            "intermediate_size": 12288,
            "vocab_size": 151936,
            "num_experts": 128,
            "num_experts_per_tok": 8,
            "moe_intermediate_size": 1536,
            "tie_word_embeddings": False,
        },
        "models.yaml: Qwen/Qwen3-235B-A22B",
    ),
    "Qwen3-Next-80B-A3B": (
        {
            "model_type": "qwen3_next",
            "num_hidden_layers": 48,
            "hidden_size": 2048,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "head_dim": 256,
            "intermediate_size": 5120,
            "vocab_size": 151936,
            "linear_num_key_heads": 16,
            "linear_num_value_heads": 32,
            "linear_key_head_dim": 128,
            "linear_value_head_dim": 128,
            "linear_conv_kernel_dim": 4,
            "num_experts": 512,
            "num_experts_per_tok": 10,
            "moe_intermediate_size": 512,
            "shared_expert_intermediate_size": 512,
            "tie_word_embeddings": False,
        },
        "models.yaml: Qwen/Qwen3-Next-80B-A3B (the converter adds its MTP layer)",
    ),
    "gemma-3-27b-it": (
        {
            "model_type": "gemma3",
            "text_config": {
                "hidden_size": 5376,
                "num_hidden_layers": 62,
                "num_attention_heads": 32,
                "num_key_value_heads": 16,
                "head_dim": 128,
                "intermediate_size": 21504,
                "vocab_size": 262208,
                "sliding_window": 1024,
            },
        },
        "models.yaml: google/gemma-3-27b-it (text model; the vision tower goes to a separate mmproj file)",
    ),
    "Mistral-Small-3.1-24B": (
        {
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
        },
        "models.yaml: mistralai/Mistral-Small-3.1-24B-Instruct-2503 (text model)",
    ),
    "DeepSeek-V3": (
        {
            "model_type": "deepseek_v3",
            "num_hidden_layers": 61,
            "first_k_dense_replace": 3,
            "hidden_size": 7168,
            "num_attention_heads": 128,
            "num_key_value_heads": 128,
            "q_lora_rank": 1536,
            "kv_lora_rank": 512,
            "qk_nope_head_dim": 128,
            "qk_rope_head_dim": 64,
            "v_head_dim": 128,
            "intermediate_size": 18432,
            "vocab_size": 129280,
            "n_routed_experts": 256,
            "num_experts_per_tok": 8,
            "moe_intermediate_size": 2048,
            "n_shared_experts": 1,
            "topk_method": "noaux_tc",
            "num_nextn_predict_layers": 1,
        },
        "models.yaml: deepseek-ai/DeepSeek-V3 (the converter drops its MTP layer)",
    ),
    "GLM-4.5-Air": (
        {
            "model_type": "glm4_moe",
            "num_hidden_layers": 46,
            "first_k_dense_replace": 1,
            "hidden_size": 4096,
            "num_attention_heads": 96,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "intermediate_size": 10944,
            "vocab_size": 151552,
            "n_routed_experts": 128,
            "num_experts_per_tok": 8,
            "moe_intermediate_size": 1408,
            "n_shared_experts": 1,
            "num_nextn_predict_layers": 1,
            "attention_bias": True,
        },
        "models.yaml: zai-org/GLM-4.5-Air (1 MTP layer, which the converter keeps)",
    ),
    "Nemotron-3-Nano-30B-A3B": (
        {
            "model_type": "nemotron_h",
            "num_hidden_layers": 52,
            "hybrid_override_pattern": "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME",
            "hidden_size": 2688,
            "num_attention_heads": 32,
            "num_key_value_heads": 2,
            "head_dim": 128,
            "vocab_size": 131072,
            "n_routed_experts": 128,
            "num_experts_per_tok": 6,
            "moe_intermediate_size": 1856,
            "n_shared_experts": 1,
            "moe_shared_expert_intermediate_size": 3712,
            "mamba_num_heads": 64,
            "mamba_head_dim": 64,
            "ssm_state_size": 128,
            "n_groups": 8,
            "conv_kernel": 4,
        },
        "models.yaml: nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
    ),
    "Nemotron-3-Super-120B-A12B": (
        {
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
        },
        "models.yaml: nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16",
    ),
}


@dataclass(frozen=True)
class Published:
    model: str
    quant: str  # llama.cpp file type of the file ("BF16", "Q4_K_M", "MXFP4_MOE", ...)
    size_gb: float  # as printed (GB = 10^9 bytes, 2 decimals)
    repo: str
    source: str  # where the figure was read
    imatrix: bool  # quantized with an importance matrix
    release: str = ""  # llama.cpp release that made the file, when the README says


_BART_Q4B = (
    "bartowski/Qwen_Qwen3-4B-GGUF README (read at hf.qhduan.com/bartowski/Qwen_Qwen3-4B-GGUF/blob/main/README.md)"
)
_BART_Q8B = "bartowski/Qwen_Qwen3-8B-GGUF README (read at model.aibase.cn/models/details/1924737620978700288)"
_BART_Q30 = "bartowski/Qwen_Qwen3-30B-A3B-GGUF README (read at model.aibase.com/zh/models/details/1924737621108723712)"
_BART_PHI = "bartowski/phi-4-GGUF README (read at huggingface.yyhnxgf.workers.dev/bartowski/phi-4-GGUF)"
_BART_OSS = "bartowski/openai_gpt-oss-20b-GGUF README (read at huggingface.erdda.com/bartowski/openai_gpt-oss-20b-GGUF)"

PUBLISHED: tuple[Published, ...] = (
    *(
        Published("Qwen3-4B", q, gb, "bartowski/Qwen_Qwen3-4B-GGUF", _BART_Q4B, True, "b5200")
        for q, gb in (
            ("BF16", 8.05),
            ("Q8_0", 4.28),
            ("Q6_K", 3.31),
            ("Q5_K_M", 2.89),
            ("Q5_K_S", 2.82),
            ("Q4_1", 2.60),
            ("Q4_K_M", 2.50),
            ("Q4_K_S", 2.38),
            ("Q4_0", 2.38),
        )
    ),
    *(
        Published("Qwen3-8B", q, gb, "bartowski/Qwen_Qwen3-8B-GGUF", _BART_Q8B, True, "b5200")
        for q, gb in (("BF16", 16.39), ("Q8_0", 8.71), ("Q6_K", 6.73))
    ),
    *(
        Published("Qwen3-30B-A3B", q, gb, "bartowski/Qwen_Qwen3-30B-A3B-GGUF", _BART_Q30, True, "b5200")
        for q, gb in (("BF16", 61.10), ("Q8_0", 32.48), ("Q6_K", 25.10), ("Q5_K_M", 21.74), ("Q5_K_S", 21.10))
    ),
    *(
        Published("phi-4", q, gb, "bartowski/phi-4-GGUF", _BART_PHI, True, "b4456")
        for q, gb in (
            ("F16", 29.32),
            ("Q8_0", 15.58),
            ("Q6_K", 12.03),
            ("Q5_K_M", 10.60),
            ("Q5_K_S", 10.15),
            ("Q4_1", 9.27),
            ("Q4_K_M", 9.05),
            ("Q4_K_S", 8.44),
            ("Q4_0", 8.41),
            ("IQ4_NL", 8.38),
        )
    ),
    Published("gpt-oss-20b", "MXFP4_MOE", 12.1, "bartowski/openai_gpt-oss-20b-GGUF", _BART_OSS, True, "b6096"),
)

# Differences explained by a rule that changed since the publisher's llama.cpp release: in the
# llama.cpp of reference, fused attn_qkv tensors follow the attn_v rules (category_is_attn_v); the
# differences below are, to the MB, those tensors' types changing (phi-4: 40 attn_qkv of 5120 x 7680).
NOTES = {
    (
        "phi-4",
        "Q5_K_M",
    ): "= 20 of 40 attn_qkv at Q5_K instead of Q6_K (attn_v layer-position rule now applies to attn_qkv)",
    ("phi-4", "IQ4_NL"): "= 40 attn_qkv at Q5_K instead of IQ4_NL (attn_v rule for GQA >= 4 now applies to attn_qkv)",
    ("phi-4", "Q4_K_S"): "= 4 attn_qkv at Q5_K instead of Q4_K (first-4 attn_v rule now applies to attn_qkv)",
}


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f}"


def _params(config: dict[str, Any]) -> int:
    arch, hp = hparams_from_config(config)
    total = 0
    for _, shape in tensor_shapes(arch, hp, config):
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def render() -> str:
    lines = [
        "# Predicted GGUF sizes against published files",
        "",
        "Generated by `scripts/gen_quant_sizes.py`; do not edit by hand.",
        "",
        "servefit predicts every tensor of a GGUF from a model's `config.json`: the tensor inventory",
        "llama.cpp's converter (`convert_hf_to_gguf.py`) writes, and the type llama.cpp's quantizer",
        "(`src/llama-quant.cpp`) gives each tensor for a file type. Both are reproduced from the llama.cpp",
        "vendored by llama-cpp-python 0.3.36, and the types are checked tensor by tensor against that",
        "llama.cpp's own quantizer on scaled-down models of every supported architecture",
        "(`tests/integration/test_quant_validation.py`). Tensor bytes are then exact; the file size adds",
        "32-byte alignment padding and an estimate of the header (tensor infos exactly, metadata estimated",
        "from the vocabulary size: token strings, token types, merges, chat template), which is within a",
        "few MB of real files.",
        "",
        "Published sizes are those printed in the publishers' READMEs (GB = 10^9 bytes, two decimals), so a",
        "difference of 0.01 GB is rounding. Publishers' files were made by older llama.cpp releases (column",
        "*release*); where a quantization rule changed since, the difference is explained in *notes*.",
        "Published quants marked imatrix were made with an importance matrix, and are predicted with",
        "`imatrix=True` (it changes the first layers' `ffn_down` of Q4_0/Q5_0 and IQ4 types).",
        "",
        "## What is validated",
        "",
        f"Architectures: {', '.join(f'`{a}`' for a in ARCHITECTURES)}.",
        "",
        f"File types predicted without an importance matrix: {', '.join(FILE_TYPES)}.",
        f"File types that need one (predicted with `imatrix=True`): {', '.join(IMATRIX_FILE_TYPES)}.",
        "",
        "`tests/integration/test_quant_validation.py` writes a scaled-down model of each architecture",
        "from a synthetic `config.json` (rows that are not multiples of 256, at least 8 layers, tied and",
        "untied embeddings, next-n layers, 8-expert and 80-layer cases), has llama.cpp load it (which checks",
        "every tensor name and shape against the architecture's loader), quantizes it with",
        "`llama_model_quantize` to each file type, and requires every tensor's type to equal the prediction.",
        "",
        "## Predicted against published",
        "",
        "| model | quant | predicted (GB) | published (GB) | difference | release | notes | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ladders: dict[tuple[str, bool], dict[str, int]] = {}
    n_match = 0
    for pub in PUBLISHED:
        key = (pub.model, pub.imatrix)
        if key not in ladders:
            ladders[key] = {q.name: q.file_bytes for q in quant_ladder(CONFIGS[pub.model][0], imatrix=pub.imatrix)}
        predicted = ladders[key][pub.quant]
        diff = predicted / 1e9 - pub.size_gb
        if abs(diff) < 0.0151:
            n_match += 1
        pct = 100 * diff / pub.size_gb
        note = NOTES.get((pub.model, pub.quant), "")
        lines.append(
            f"| {pub.model} | {pub.quant}{' (imatrix)' if pub.imatrix else ''} | {_gb(predicted)} | "
            f"{pub.size_gb:.2f} | {diff:+.2f} GB ({pct:+.2f} %) | {pub.release} | {note} | {pub.source} |"
        )
    lines += [
        "",
        f"{n_match} of {len(PUBLISHED)} published sizes are matched to within rounding (0.015 GB).",
        "",
        "## Parameter counts against independent sources",
        "",
        "| model | elements in the predicted GGUF | published | source |",
        "|---|---|---|---|",
        f"| Nemotron-3-Super-120B-A12B | {_params(CONFIGS['Nemotron-3-Super-120B-A12B'][0]):,} | 123,611,033,088 | "
        "NVIDIA-NeMo/Megatron-Bridge model_verification_cards/nemotron-3-super-120b-a12b/card.yaml |",
        f"| gpt-oss-20b | {_params(CONFIGS['gpt-oss-20b'][0]):,} | 20.91 B | ggml-org/llama.cpp benches/dgx-spark.md |",
        f"| gpt-oss-120b | {_params(CONFIGS['gpt-oss-120b'][0]):,} | 116.83 B | "
        "ggml-org/llama.cpp benches/dgx-spark.md |",
        f"| Mistral-Small-3.1-24B | {_params(CONFIGS['Mistral-Small-3.1-24B'][0]):,} | 23,572,403,200 (text) | "
        "models.yaml field_sources: Mistral-Small-3.2-24B-Instruct-2506 text parameters |",
        f"| Llama-3.1-8B | {_params(CONFIGS['Llama-3.1-8B'][0]):,} | 8,030,261,248 (+64 rope factors) | "
        "meta-llama/Llama-3.1-8B-Instruct safetensors metadata |",
        "",
        "## Predicted ladders",
        "",
        "File sizes in GB (10^9 bytes), no importance matrix. MXFP4_MOE only for MoE models.",
        "",
    ]
    for model, (config, source) in CONFIGS.items():
        ladder = quant_ladder(config)
        lines += [
            f"### {model}",
            "",
            f"Hyperparameters: {source}.",
            "",
            "| quant | tensor bytes | file (GB) | bits per weight |",
            "|---|---|---|---|",
        ]
        lines += [f"| {q.name} | {q.tensor_bytes:,} | {_gb(q.file_bytes)} | {q.bits_per_weight:.3f} |" for q in ladder]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "quant-sizes.md")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
