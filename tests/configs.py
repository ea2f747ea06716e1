"""Hugging Face config.json files of real models, for tests that need a model without the catalog."""

from __future__ import annotations

from typing import Any

# Meta Llama 3.1 8B (config.json of meta-llama/Llama-3.1-8B-Instruct)
LLAMA31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
