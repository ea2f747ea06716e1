"""Reading a Hugging Face ``config.json`` as llama.cpp's converter does, and the tensor lists every architecture shares.

``Config`` merges a multimodal model's ``text_config`` / ``llm_config`` into the top level;
``detect_arch`` maps its ``architectures`` / ``model_type`` to llama.cpp's architecture name. The
``*_tensors`` helpers list the tensors (names of ``src/llama-arch.cpp``, shapes in GGML order) of
the blocks architectures have in common: embeddings and output, attention, dense FFN, routed experts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servefit.errors import ModelError
from servefit.model import Hparams

__all__ = [
    "ARCHITECTURE_CLASSES",
    "MAX_LAYERS",
    "MODEL_TYPES",
    "Config",
    "Shapes",
    "attn_tensors",
    "dense_hparams",
    "detect_arch",
    "expert_tensors",
    "ffn_tensors",
    "global_tensors",
    "head_dim_of",
    "is_tied",
    "per_layer",
    "train_context",
    "vocab_size",
]

Shapes = list[tuple[str, tuple[int, ...]]]

MAX_LAYERS = 4096  # checked before per-layer arrays are built from an untrusted config


class Config:
    """A config.json with the text model's fields on top (``text_config`` / ``llm_config``)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        if not isinstance(raw, Mapping):
            raise ModelError("config.json: expected a JSON object")
        merged: dict[str, Any] = dict(raw)
        for nested in ("text_config", "llm_config"):
            sub = raw.get(nested)
            if isinstance(sub, Mapping):
                merged.update(sub)
        # catalog entries may group HF fields under moe / mamba / mtp
        for group in ("moe", "mamba", "mtp"):
            sub = raw.get(group)
            if isinstance(sub, Mapping):
                for k, v in sub.items():
                    merged.setdefault(k, v)
        self.raw = merged
        self.arch = ""

    def has(self, *keys: str) -> bool:
        return any(self.raw.get(k) is not None for k in keys)

    def get(self, *keys: str, default: Any = None) -> Any:
        for k in keys:
            v = self.raw.get(k)
            if v is not None:
                return v
        return default

    def int(self, *keys: str, default: int | None = None) -> int:
        v = self.get(*keys)
        if v is None:
            if default is not None:
                return default
            raise ModelError(
                f"config.json: missing key {keys[0]!r}" + (f" ({self.arch})" if self.arch else ""),
                architecture=self.arch or None,
                key=keys[0],
            )
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise ModelError(f"config.json: key {keys[0]!r} must be an integer, got {v!r}", key=keys[0])
        return int(v)

    def float(self, *keys: str, default: float = 0.0) -> float:
        v = self.get(*keys)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ModelError(f"config.json: key {keys[0]!r} must be a number, got {v!r}", key=keys[0])
        return float(v)

    def flag(self, key: str, default: bool) -> bool:
        v = self.raw.get(key)
        return default if v is None else bool(v)

    def rope(self) -> Mapping[str, Any]:
        for key in ("rope_scaling", "rope_parameters"):
            v = self.raw.get(key)
            if isinstance(v, Mapping):
                return v
        return {}


MODEL_TYPES: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "mistral3": "mistral3",
    "mixtral": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3moe",
    "qwen3_next": "qwen3next",
    "gpt_oss": "gpt-oss",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "deepseek_v3": "deepseek2",
    "deepseek_v2": "deepseek2",
    "kimi_k2": "deepseek2",
    "glm4_moe": "glm4moe",
    "phi3": "phi3",
    "granitemoehybrid": "granitehybrid",
    "nemotron_h": "nemotron_h",
}

ARCHITECTURE_CLASSES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Mistral3ForConditionalGeneration": "mistral3",
    "MixtralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3moe",
    "Qwen3NextForCausalLM": "qwen3next",
    "GptOssForCausalLM": "gpt-oss",
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
    "DeepseekV3ForCausalLM": "deepseek2",
    "DeepseekV2ForCausalLM": "deepseek2",
    "KimiK2ForCausalLM": "deepseek2",
    "Glm4MoeForCausalLM": "glm4moe",
    "Phi3ForCausalLM": "phi3",
    "GraniteMoeHybridForCausalLM": "granitehybrid",
    "NemotronHForCausalLM": "nemotron_h",
}


def detect_arch(cfg: Config) -> str:
    found = ""
    archs = cfg.raw.get("architectures")
    if isinstance(archs, list):
        for a in archs:
            if isinstance(a, str) and a in ARCHITECTURE_CLASSES:
                found = ARCHITECTURE_CLASSES[a]
                break
    if not found:
        model_type = cfg.raw.get("model_type")
        if isinstance(model_type, str) and model_type in MODEL_TYPES:
            found = MODEL_TYPES[model_type]
    if not found:
        what = cfg.raw.get("model_type") or cfg.raw.get("architectures")
        if what is None:
            raise ModelError("config.json: missing key 'model_type' (and no known 'architectures')", key="model_type")
        raise ModelError(
            f"config.json: unsupported model type {what!r} (supported: {', '.join(sorted(set(MODEL_TYPES)))})",
            key="model_type",
        )
    if found == "nemotron_h" and cfg.has("num_experts_per_tok"):
        found = "nemotron_h_moe"
    return found


def per_layer(n: int, value: int) -> tuple[int, ...]:
    return (value,) * n


def head_dim_of(cfg: Config) -> int:
    if cfg.has("head_dim"):
        return cfg.int("head_dim")
    return cfg.int("hidden_size") // cfg.int("num_attention_heads")


def vocab_size(cfg: Config, pad_multiple: int = 1) -> int:
    n = cfg.int("vocab_size")
    return -(n // -pad_multiple) * pad_multiple


def train_context(cfg: Config) -> int:
    return cfg.int("max_position_embeddings", "max_sequence_length", "seq_length", default=0)


def dense_hparams(cfg: Config, *, n_ff: int | None = None, **extra: Any) -> Hparams:
    n_layer = cfg.int("num_hidden_layers")
    head_dim = head_dim_of(cfg)
    n_head = cfg.int("num_attention_heads")
    n_head_kv = cfg.int("num_key_value_heads", default=n_head)
    ff = cfg.int("intermediate_size") if n_ff is None else n_ff
    values: dict[str, Any] = {
        "n_layer": n_layer,
        "n_embd": cfg.int("hidden_size"),
        "n_vocab": vocab_size(cfg),
        "n_ctx_train": train_context(cfg),
        "n_head": per_layer(n_layer, n_head),
        "n_head_kv": per_layer(n_layer, n_head_kv),
        "n_embd_head_k": head_dim,
        "n_embd_head_v": head_dim,
        "n_ff": per_layer(n_layer, ff),
        "rope_freq_base": cfg.float("rope_theta", default=cfg.float("rope_freq_base", default=0.0)),
    }
    values.update(extra)
    return Hparams(**values)


def is_tied(cfg: Config, default: bool = False) -> bool:
    return cfg.flag("tie_word_embeddings", default)


def global_tensors(hp: Hparams, cfg: Config, *, tied_default: bool = False) -> Shapes:
    out: Shapes = [("token_embd.weight", (hp.n_embd, hp.n_vocab)), ("output_norm.weight", (hp.n_embd,))]
    if not is_tied(cfg, tied_default):
        out.append(("output.weight", (hp.n_embd, hp.n_vocab)))
    return out


def attn_tensors(i: int, hp: Hparams, *, bias: bool = False, qk_norm: bool = False, out_bias: bool = False) -> Shapes:
    q = hp.n_embd_head_k * hp.n_head[i]
    k = hp.n_embd_head_k * hp.n_head_kv[i]
    v = hp.n_embd_head_v * hp.n_head_kv[i]
    p = f"blk.{i}."
    out: Shapes = [
        (p + "attn_q.weight", (hp.n_embd, q)),
        (p + "attn_k.weight", (hp.n_embd, k)),
        (p + "attn_v.weight", (hp.n_embd, v)),
        (p + "attn_output.weight", (hp.n_embd_head_v * hp.n_head[i], hp.n_embd)),
    ]
    if bias:
        out += [(p + "attn_q.bias", (q,)), (p + "attn_k.bias", (k,)), (p + "attn_v.bias", (v,))]
    if out_bias:
        out.append((p + "attn_output.bias", (hp.n_embd,)))
    if qk_norm:
        out += [(p + "attn_q_norm.weight", (hp.n_embd_head_k,)), (p + "attn_k_norm.weight", (hp.n_embd_head_k,))]
    return out


def ffn_tensors(i: int, n_embd: int, n_ff: int, *, gate: bool = True, suffix: str = "") -> Shapes:
    p = f"blk.{i}."
    out: Shapes = []
    if gate:
        out.append((p + f"ffn_gate{suffix}.weight", (n_embd, n_ff)))
    out += [(p + f"ffn_down{suffix}.weight", (n_ff, n_embd)), (p + f"ffn_up{suffix}.weight", (n_embd, n_ff))]
    return out


def expert_tensors(i: int, n_embd: int, n_ff_exp: int, n_expert: int, *, gate: bool = True) -> Shapes:
    p = f"blk.{i}."
    out: Shapes = []
    if gate:
        out.append((p + "ffn_gate_exps.weight", (n_embd, n_ff_exp, n_expert)))
    out += [
        (p + "ffn_down_exps.weight", (n_ff_exp, n_embd, n_expert)),
        (p + "ffn_up_exps.weight", (n_embd, n_ff_exp, n_expert)),
    ]
    return out
