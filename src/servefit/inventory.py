"""From a Hugging Face ``config.json`` to the GGUF that llama.cpp's converter writes.

``hparams_from_config`` reads the hyperparameters the way ``convert_hf_to_gguf.py`` does (the
converter of the llama.cpp vendored by llama-cpp-python 0.3.36) and returns them as llama.cpp holds
them after loading (per-layer arrays expanded). ``tensor_shapes`` lists every tensor of the converted
file, with the names of ``src/llama-arch.cpp`` and the shapes ``load_arch_tensors`` of
``src/models/<arch>.cpp`` expects (GGML order). ``spec_from_config`` adds the types
``servefit.quants.predict_types`` predicts for a file type, exact tensor bytes, and an estimate of the
header; ``quant_ladder`` does it for every standard file type.

Next-n (MTP) layers are included where the converter writes them by default (GLM-4.x MoE and
Qwen3-Next write them as extra blocks, Nemotron-H MoE folds its MTP head into one trailing block;
the DeepSeek V3 converter drops them). They count in the file size, but llama.cpp loads their tensors
only when MTP speculative decoding is asked for (``llama_model_params.load_mtp``, false by default);
``LayerInfo.is_nextn`` marks those layers.

gpt-oss ships its experts in MXFP4 and the converter keeps them so; requantizing them needs
``llama-quantize --allow-requantize``, with which the usual rules apply.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servefit.errors import ModelError
from servefit.model import Hparams, LayerInfo, ModelSpec, TensorInfo, layer_index_of, role_of
from servefit.quants import FILE_TYPES, converter_type, predict_types, tensor_nbytes

__all__ = [
    "ARCHITECTURES",
    "QuantSize",
    "estimate_header_bytes",
    "hparams_from_config",
    "quant_ladder",
    "spec_from_config",
    "tensor_shapes",
]

Shapes = list[tuple[str, tuple[int, ...]]]

GGUF_ALIGNMENT = 32  # general.alignment default (GGUF_DEFAULT_ALIGNMENT)
_MAX_LAYERS = 4096  # checked before per-layer arrays are built from an untrusted config


@dataclass(frozen=True, slots=True)
class QuantSize:
    """One rung of a model's quant ladder."""

    name: str  # file type: "Q4_K_M"
    tensor_bytes: int  # exact sum of tensor data
    file_bytes: int  # tensor data + padding + estimated header
    bits_per_weight: float  # 8 * tensor_bytes / parameters
    source: str = "predicted"  # "predicted" or "published"


# ---------------------------------------------------------------------------------------------
# reading config.json


class _Config:
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


_MODEL_TYPES: dict[str, str] = {
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

_ARCHITECTURE_CLASSES: dict[str, str] = {
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


def _detect_arch(cfg: _Config) -> str:
    found = ""
    archs = cfg.raw.get("architectures")
    if isinstance(archs, list):
        for a in archs:
            if isinstance(a, str) and a in _ARCHITECTURE_CLASSES:
                found = _ARCHITECTURE_CLASSES[a]
                break
    if not found:
        model_type = cfg.raw.get("model_type")
        if isinstance(model_type, str) and model_type in _MODEL_TYPES:
            found = _MODEL_TYPES[model_type]
    if not found:
        what = cfg.raw.get("model_type") or cfg.raw.get("architectures")
        if what is None:
            raise ModelError("config.json: missing key 'model_type' (and no known 'architectures')", key="model_type")
        raise ModelError(
            f"config.json: unsupported model type {what!r} (supported: {', '.join(sorted(set(_MODEL_TYPES)))})",
            key="model_type",
        )
    if found == "nemotron_h" and cfg.has("num_experts_per_tok"):
        found = "nemotron_h_moe"
    return found


# ---------------------------------------------------------------------------------------------
# per-architecture readers: (config) -> Hparams, and (hparams, config) -> tensors


def _per_layer(n: int, value: int) -> tuple[int, ...]:
    return (value,) * n


def _head_dim(cfg: _Config) -> int:
    if cfg.has("head_dim"):
        return cfg.int("head_dim")
    return cfg.int("hidden_size") // cfg.int("num_attention_heads")


def _vocab(cfg: _Config, pad_multiple: int = 1) -> int:
    n = cfg.int("vocab_size")
    return -(n // -pad_multiple) * pad_multiple


def _ctx(cfg: _Config) -> int:
    return cfg.int("max_position_embeddings", "max_sequence_length", "seq_length", default=0)


def _dense_hparams(cfg: _Config, *, n_ff: int | None = None, **extra: Any) -> Hparams:
    n_layer = cfg.int("num_hidden_layers")
    head_dim = _head_dim(cfg)
    n_head = cfg.int("num_attention_heads")
    n_head_kv = cfg.int("num_key_value_heads", default=n_head)
    ff = cfg.int("intermediate_size") if n_ff is None else n_ff
    values: dict[str, Any] = {
        "n_layer": n_layer,
        "n_embd": cfg.int("hidden_size"),
        "n_vocab": _vocab(cfg),
        "n_ctx_train": _ctx(cfg),
        "n_head": _per_layer(n_layer, n_head),
        "n_head_kv": _per_layer(n_layer, n_head_kv),
        "n_embd_head_k": head_dim,
        "n_embd_head_v": head_dim,
        "n_ff": _per_layer(n_layer, ff),
        "rope_freq_base": cfg.float("rope_theta", default=cfg.float("rope_freq_base", default=0.0)),
    }
    values.update(extra)
    return Hparams(**values)


def _tied(cfg: _Config, default: bool = False) -> bool:
    return cfg.flag("tie_word_embeddings", default)


def _globals(hp: Hparams, cfg: _Config, *, tied_default: bool = False) -> Shapes:
    out: Shapes = [("token_embd.weight", (hp.n_embd, hp.n_vocab)), ("output_norm.weight", (hp.n_embd,))]
    if not _tied(cfg, tied_default):
        out.append(("output.weight", (hp.n_embd, hp.n_vocab)))
    return out


def _attn(i: int, hp: Hparams, *, bias: bool = False, qk_norm: bool = False, out_bias: bool = False) -> Shapes:
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


def _ffn(i: int, n_embd: int, n_ff: int, *, gate: bool = True, suffix: str = "") -> Shapes:
    p = f"blk.{i}."
    out: Shapes = []
    if gate:
        out.append((p + f"ffn_gate{suffix}.weight", (n_embd, n_ff)))
    out += [(p + f"ffn_down{suffix}.weight", (n_ff, n_embd)), (p + f"ffn_up{suffix}.weight", (n_embd, n_ff))]
    return out


def _experts(i: int, n_embd: int, n_ff_exp: int, n_expert: int, *, gate: bool = True) -> Shapes:
    p = f"blk.{i}."
    out: Shapes = []
    if gate:
        out.append((p + "ffn_gate_exps.weight", (n_embd, n_ff_exp, n_expert)))
    out += [
        (p + "ffn_down_exps.weight", (n_ff_exp, n_embd, n_expert)),
        (p + "ffn_up_exps.weight", (n_embd, n_ff_exp, n_expert)),
    ]
    return out


# --- llama (Llama 3.x, Mistral), qwen2, qwen3, phi3 -----------------------------------------------


def _hp_llama(cfg: _Config) -> Hparams:
    n_expert = cfg.int("num_local_experts", default=0)
    if n_expert:  # Mixtral: the llama architecture with routed experts
        n_ff = cfg.int("intermediate_size")
        return _dense_hparams(cfg, n_expert=n_expert, n_expert_used=cfg.int("num_experts_per_tok"), n_ff_exp=n_ff)
    return _dense_hparams(cfg)


def _ts_llama(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    rope = cfg.rope()
    if str(rope.get("rope_type", rope.get("type", ""))).lower() == "llama3":
        out.append(("rope_freqs.weight", (hp.n_embd_head_k // 2,)))
    bias = cfg.flag("attention_bias", False)
    for i in range(hp.n_layer):
        out.append((f"blk.{i}.attn_norm.weight", (hp.n_embd,)))
        out += _attn(i, hp, bias=bias, out_bias=bias)
        out.append((f"blk.{i}.ffn_norm.weight", (hp.n_embd,)))
        if hp.n_expert:
            out.append((f"blk.{i}.ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
            out += _experts(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            continue
        out += _ffn(i, hp.n_embd, hp.n_ff[i])
        if cfg.flag("mlp_bias", False):
            p = f"blk.{i}."
            out += [
                (p + "ffn_gate.bias", (hp.n_ff[i],)),
                (p + "ffn_down.bias", (hp.n_embd,)),
                (p + "ffn_up.bias", (hp.n_ff[i],)),
            ]
    return out


def _ts_qwen2(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    for i in range(hp.n_layer):
        out.append((f"blk.{i}.attn_norm.weight", (hp.n_embd,)))
        out += _attn(i, hp, bias=True)
        out.append((f"blk.{i}.ffn_norm.weight", (hp.n_embd,)))
        out += _ffn(i, hp.n_embd, hp.n_ff[i])
    return out


def _ts_qwen3(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    for i in range(hp.n_layer):
        out.append((f"blk.{i}.attn_norm.weight", (hp.n_embd,)))
        out += _attn(i, hp, qk_norm=True, bias=cfg.flag("attention_bias", False))
        out.append((f"blk.{i}.ffn_norm.weight", (hp.n_embd,)))
        out += _ffn(i, hp.n_embd, hp.n_ff[i])
    return out


def _hp_qwen3moe(cfg: _Config) -> Hparams:
    n_expert = cfg.int("num_experts", "n_routed_experts")
    n_ff_exp = cfg.int("moe_intermediate_size")
    return _dense_hparams(
        cfg,
        n_ff=cfg.int("intermediate_size", default=0),
        n_expert=n_expert,
        n_expert_used=cfg.int("num_experts_per_tok"),
        n_ff_exp=n_ff_exp,
    )


def _ts_qwen3moe(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        out += _attn(i, hp, qk_norm=True, bias=cfg.flag("attention_bias", False))
        out.append((p + "ffn_norm.weight", (hp.n_embd,)))
        out.append((p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
        out += _experts(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
    return out


# --- nemotron_h / nemotron_h_moe (Nemotron-H, Nemotron 3 Nano/Super) ------------------------------


def _nemotron_pattern(cfg: _Config) -> list[str]:
    pattern = cfg.get("hybrid_override_pattern", "layer_pattern", "layers_block_type")
    if isinstance(pattern, str):
        return list(pattern)
    if isinstance(pattern, list):
        kinds = {"mamba": "M", "linear_attention": "M", "attention": "*", "full_attention": "*", "moe": "E", "mlp": "-"}
        return [kinds.get(str(x), "-") for x in pattern]
    raise ModelError("config.json: missing key 'hybrid_override_pattern' (nemotron_h)", key="hybrid_override_pattern")


def _hp_nemotron_h(cfg: _Config) -> Hparams:
    pattern = _nemotron_pattern(cfg)
    is_moe = cfg.has("num_experts_per_tok")
    n_trunk = len(pattern)
    n_nextn = cfg.int("num_nextn_predict_layers", default=0) if is_moe else 0
    if n_nextn > 1:
        raise ModelError("config.json: num_nextn_predict_layers > 1 is not supported by the converter (nemotron_h)")
    n_layer = n_trunk + n_nextn
    ffn_char = "E" if is_moe else "-"
    attn = [c == "*" for c in pattern] + [True] * n_nextn
    mlp = [c == ffn_char for c in pattern] + [True] * n_nextn
    head_dim = cfg.int("head_dim", "attention_head_dim")
    n_head = cfg.int("num_attention_heads")
    n_head_kv = cfg.int("num_key_value_heads")
    ff = cfg.int("moe_intermediate_size") if is_moe else cfg.int("intermediate_size")
    mamba_head_dim = cfg.int("mamba_head_dim", "head_dim")
    n_ssm_head = cfg.int("mamba_num_heads", "num_heads")
    recurrent = tuple(c == "M" for c in pattern) + (False,) * n_nextn
    archs = cfg.get("architectures", default=[])
    use_rope = "BambaForCausalLM" in archs or not any(recurrent)
    return Hparams(
        n_layer=n_layer,
        n_embd=cfg.int("hidden_size"),
        n_vocab=_vocab(cfg, 8),
        n_ctx_train=_ctx(cfg) if use_rope else 2**20,
        n_head=_per_layer(n_layer, n_head),
        n_head_kv=tuple(n_head_kv if a else 0 for a in attn),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=tuple(ff if m else 0 for m in mlp),
        n_expert=cfg.int("n_routed_experts") if is_moe else 0,
        n_expert_used=cfg.int("num_experts_per_tok") if is_moe else 0,
        n_expert_shared=cfg.int("n_shared_experts", default=0) if is_moe else 0,
        n_ff_exp=ff if is_moe else 0,
        n_ff_shexp=cfg.int("moe_shared_expert_intermediate_size", default=0) if is_moe else 0,
        moe_latent_size=cfg.int("moe_latent_size", default=0) if is_moe else 0,
        ssm_d_conv=cfg.int("conv_kernel", "mamba_d_conv", "d_conv"),
        ssm_d_inner=n_ssm_head * mamba_head_dim,
        ssm_d_state=cfg.int("ssm_state_size", "mamba_d_state", "state_size"),
        ssm_n_group=cfg.int("n_groups", "mamba_n_groups"),
        ssm_dt_rank=n_ssm_head,
        recurrent=recurrent,
        n_nextn_layer=n_nextn,
        rope_freq_base=cfg.float("rope_theta", default=0.0),
    )


def _ssm2(i: int, hp: Hparams, *, conv_bias: bool) -> Shapes:
    """Mamba-2 mixer tensors as llama.cpp's nemotron_h / granitehybrid loaders expect them."""
    p = f"blk.{i}."
    d_inner, ng, ds, nh = hp.ssm_d_inner, hp.ssm_n_group, hp.ssm_d_state, hp.ssm_dt_rank
    conv_dim = d_inner + 2 * ng * ds
    out: Shapes = [
        (p + "ssm_in.weight", (hp.n_embd, 2 * d_inner + 2 * ng * ds + nh)),
        (p + "ssm_conv1d.weight", (hp.ssm_d_conv, conv_dim)),
    ]
    if conv_bias:
        out.append((p + "ssm_conv1d.bias", (conv_dim,)))
    out += [
        (p + "ssm_dt.bias", (nh,)),
        (p + "ssm_a", (1, nh)),
        (p + "ssm_d", (1, nh)),
        (p + "ssm_norm.weight", (d_inner // ng, ng)),
        (p + "ssm_out.weight", (d_inner, hp.n_embd)),
    ]
    return out


def _nemotron_moe(i: int, hp: Hparams) -> Shapes:
    p = f"blk.{i}."
    moe_n_embd = hp.moe_latent_size or hp.n_embd
    out: Shapes = [
        (p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)),
        (p + "exp_probs_b.bias", (hp.n_expert,)),
    ]
    if hp.moe_latent_size:
        out += [
            (p + "ffn_latent_down.weight", (hp.n_embd, moe_n_embd)),
            (p + "ffn_latent_up.weight", (moe_n_embd, hp.n_embd)),
        ]
    out += _experts(i, moe_n_embd, hp.n_ff_exp, hp.n_expert, gate=False)
    if hp.n_ff_shexp:
        out += [
            (p + "ffn_down_shexp.weight", (hp.n_ff_shexp, hp.n_embd)),
            (p + "ffn_up_shexp.weight", (hp.n_embd, hp.n_ff_shexp)),
        ]
    return out


def _ts_nemotron_h(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    n_trunk = hp.n_layer - hp.n_nextn_layer
    conv_bias = cfg.flag("use_conv_bias", True)
    attn_bias = cfg.flag("attention_bias", False)
    mlp_bias = cfg.flag("mlp_bias", False)
    for i in range(n_trunk):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        if hp.recurrent[i]:
            out += _ssm2(i, hp, conv_bias=conv_bias)
        elif hp.n_ff[i] == 0:
            out += _attn(i, hp, bias=attn_bias, out_bias=attn_bias)
        elif hp.n_expert:
            out += _nemotron_moe(i, hp)
        else:
            out += _ffn(i, hp.n_embd, hp.n_ff[i], gate=False)
            if mlp_bias:
                out += [(p + "ffn_down.bias", (hp.n_embd,)), (p + "ffn_up.bias", (hp.n_ff[i],))]
    for i in range(n_trunk, hp.n_layer):
        p = f"blk.{i}."
        out += [
            (p + "nextn.enorm.weight", (hp.n_embd,)),
            (p + "nextn.hnorm.weight", (hp.n_embd,)),
            (p + "nextn.eh_proj.weight", (2 * hp.n_embd, hp.n_embd)),
            (p + "nextn.shared_head_norm.weight", (hp.n_embd,)),
            (p + "attn_norm.weight", (hp.n_embd,)),
        ]
        out += _attn(i, hp, bias=attn_bias, out_bias=attn_bias)
        out.append((p + "post_attention_norm.weight", (hp.n_embd,)))
        out += _nemotron_moe(i, hp)
    return out


# --- gemma3 ------------------------------------------------------------------------------------------


def _hp_gemma3(cfg: _Config) -> Hparams:
    # defaults of transformers' Gemma3TextConfig, which multimodal configs leave out of text_config
    n_layer = cfg.int("num_hidden_layers", default=26)
    n_head = cfg.int("num_attention_heads", default=8)
    n_head_kv = cfg.int("num_key_value_heads", default=4)
    head_dim = cfg.int("head_dim", default=256)
    n_swa = cfg.int("sliding_window", default=4096)
    pattern = cfg.int("sliding_window_pattern", default=6)
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == n_layer:
        swa = tuple(t == "sliding_attention" for t in layer_types)
    else:
        swa = tuple(i % pattern < pattern - 1 for i in range(n_layer))
    return Hparams(
        n_layer=n_layer,
        n_embd=cfg.int("hidden_size", default=2304),
        n_vocab=cfg.int("vocab_size", default=262208),
        n_ctx_train=cfg.int("max_position_embeddings", default=131072),
        n_head=_per_layer(n_layer, n_head),
        n_head_kv=_per_layer(n_layer, n_head_kv),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=_per_layer(n_layer, cfg.int("intermediate_size", default=9216)),
        n_swa=n_swa,
        swa_layers=swa,
        rope_freq_base=cfg.float("rope_theta", default=1_000_000.0),
    )


def _ts_gemma3(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg, tied_default=True)
    out = [t for t in out if t[0] != "output.weight"]  # Gemma always ties its output to the embeddings
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        out += _attn(i, hp, qk_norm=True)
        out.append((p + "post_attention_norm.weight", (hp.n_embd,)))
        out.append((p + "ffn_norm.weight", (hp.n_embd,)))
        out += _ffn(i, hp.n_embd, hp.n_ff[i])
        out.append((p + "post_ffw_norm.weight", (hp.n_embd,)))
    return out


# --- phi3 (Phi-3, Phi-4) ---------------------------------------------------------------------------


def _ts_phi3(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    rope = cfg.rope()
    if rope.get("long_factor"):
        rot = int(cfg.float("partial_rotary_factor", default=1.0) * hp.n_embd) // hp.n_head[0]
        out += [("rope_factors_long.weight", (rot // 2,)), ("rope_factors_short.weight", (rot // 2,))]
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        qkv = hp.n_embd_head_k * (hp.n_head[i] + 2 * hp.n_head_kv[i])
        out += [
            (p + "attn_norm.weight", (hp.n_embd,)),
            (p + "attn_qkv.weight", (hp.n_embd, qkv)),
            (p + "attn_output.weight", (hp.n_embd, hp.n_embd)),
            (p + "ffn_norm.weight", (hp.n_embd,)),
            (p + "ffn_down.weight", (hp.n_ff[i], hp.n_embd)),
            (p + "ffn_up.weight", (hp.n_embd, 2 * hp.n_ff[i])),
        ]
    return out


# --- gpt-oss -------------------------------------------------------------------------------------


def _hp_gpt_oss(cfg: _Config) -> Hparams:
    n_layer = cfg.int("num_hidden_layers")
    n_ff_exp = cfg.int("intermediate_size")
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == n_layer:
        swa = tuple(t == "sliding_attention" for t in layer_types)
    else:
        swa = tuple(i % 2 < 1 for i in range(n_layer))
    return _dense_hparams(
        cfg,
        n_ff=n_ff_exp,
        n_expert=cfg.int("num_local_experts", "num_experts"),
        n_expert_used=cfg.int("num_experts_per_tok", "experts_per_token"),
        n_ff_exp=n_ff_exp,
        n_swa=cfg.int("sliding_window", default=128),
        swa_layers=swa,
    )


def _ts_gpt_oss(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out += [(p + "attn_norm.weight", (hp.n_embd,)), (p + "post_attention_norm.weight", (hp.n_embd,))]
        out += _attn(i, hp, bias=True, out_bias=True)
        out += [(p + "attn_sinks.weight", (hp.n_head[i],)), (p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert))]
        out.append((p + "ffn_gate_inp.bias", (hp.n_expert,)))
        out += _experts(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
        out += [
            (p + "ffn_gate_exps.bias", (hp.n_ff_exp, hp.n_expert)),
            (p + "ffn_down_exps.bias", (hp.n_embd, hp.n_expert)),
            (p + "ffn_up_exps.bias", (hp.n_ff_exp, hp.n_expert)),
        ]
    return out


# --- deepseek2 (DeepSeek V3/R1, Kimi K2): MLA, dense lead layers, shared experts --------------------


def _hp_deepseek2(cfg: _Config) -> Hparams:
    n_layer = cfg.int("num_hidden_layers")  # the converter drops the MTP layers of DeepSeek V3
    kv_lora = cfg.int("kv_lora_rank", default=512)
    rope_dim = cfg.int("qk_rope_head_dim")
    nope_dim = cfg.int("qk_nope_head_dim")
    v_dim = cfg.int("v_head_dim")
    n_expert = cfg.int("n_routed_experts", default=0)
    n_ff_exp = cfg.int("moe_intermediate_size", "intermediate_size")
    dense_lead = cfg.int("first_k_dense_replace", default=0 if n_expert else n_layer)
    n_ff = cfg.int("intermediate_size")
    return Hparams(
        n_layer=n_layer,
        n_embd=cfg.int("hidden_size"),
        n_vocab=cfg.int("vocab_size"),
        n_ctx_train=_ctx(cfg),
        n_head=_per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=_per_layer(n_layer, 1),  # MLA is converted as MQA over the compressed KV
        n_embd_head_k=kv_lora + rope_dim,
        n_embd_head_v=kv_lora,
        n_ff=tuple(n_ff if i < dense_lead else 0 for i in range(n_layer)),
        n_expert=n_expert,
        n_expert_used=cfg.int("num_experts_per_tok", default=0),
        n_expert_shared=cfg.int("n_shared_experts", default=0),
        n_ff_exp=n_ff_exp,
        n_ff_shexp=n_ff_exp * cfg.int("n_shared_experts", default=0),
        n_layer_dense_lead=dense_lead,
        kv_lora_rank=kv_lora,
        n_embd_head_k_mla=nope_dim + rope_dim,
        n_embd_head_v_mla=v_dim,
        rope_freq_base=cfg.float("rope_theta", default=10000.0),
    )


def _ts_deepseek2(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    q_lora = cfg.int("q_lora_rank", default=0)
    rope_dim = hp.n_embd_head_k - hp.kv_lora_rank
    nope_dim = hp.n_embd_head_k_mla - rope_dim
    n_head = hp.n_head[0]
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        if q_lora:
            out += [
                (p + "attn_q_a_norm.weight", (q_lora,)),
                (p + "attn_q_a.weight", (hp.n_embd, q_lora)),
                (p + "attn_q_b.weight", (q_lora, n_head * hp.n_embd_head_k_mla)),
            ]
        else:
            out.append((p + "attn_q.weight", (hp.n_embd, n_head * hp.n_embd_head_k_mla)))
        out += [
            (p + "attn_kv_a_norm.weight", (hp.kv_lora_rank,)),
            (p + "attn_kv_a_mqa.weight", (hp.n_embd, hp.kv_lora_rank + rope_dim)),
            (p + "attn_k_b.weight", (nope_dim, hp.kv_lora_rank, n_head)),
            (p + "attn_v_b.weight", (hp.kv_lora_rank, hp.n_embd_head_v_mla, n_head)),
            (p + "attn_output.weight", (n_head * hp.n_embd_head_v_mla, hp.n_embd)),
            (p + "ffn_norm.weight", (hp.n_embd,)),
        ]
        if i < hp.n_layer_dense_lead:
            out += _ffn(i, hp.n_embd, hp.n_ff[i])
        else:
            out.append((p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
            if cfg.get("topk_method") == "noaux_tc" or cfg.has("e_score_correction_bias"):
                out.append((p + "exp_probs_b.bias", (hp.n_expert,)))
            out += _experts(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            if hp.n_ff_shexp:
                out += _ffn(i, hp.n_embd, hp.n_ff_shexp, suffix="_shexp")
    return out


# --- glm4moe (GLM-4.5, GLM-4.6): dense lead layers, shared expert, next-n layer ---------------------


def _hp_glm4moe(cfg: _Config) -> Hparams:
    n_trunk = cfg.int("num_hidden_layers")
    n_nextn = cfg.int("num_nextn_predict_layers", default=0)
    n_layer = n_trunk + n_nextn
    dense_lead = cfg.int("first_k_dense_replace", default=0)
    n_ff = cfg.int("intermediate_size")
    n_ff_exp = cfg.int("moe_intermediate_size")
    head_dim = _head_dim(cfg)
    return Hparams(
        n_layer=n_layer,
        n_embd=cfg.int("hidden_size"),
        n_vocab=cfg.int("vocab_size"),
        n_ctx_train=_ctx(cfg),
        n_head=_per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=_per_layer(n_layer, cfg.int("num_key_value_heads")),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=tuple(n_ff if i < dense_lead else 0 for i in range(n_layer)),
        n_expert=cfg.int("n_routed_experts"),
        n_expert_used=cfg.int("num_experts_per_tok"),
        n_expert_shared=cfg.int("n_shared_experts", default=0),
        n_ff_exp=n_ff_exp,
        n_ff_shexp=n_ff_exp * cfg.int("n_shared_experts", default=0),
        n_layer_dense_lead=dense_lead,
        n_nextn_layer=n_nextn,
        rope_freq_base=cfg.float("rope_theta", default=10000.0),
    )


def _ts_glm4moe(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    n_trunk = hp.n_layer - hp.n_nextn_layer
    bias = cfg.flag("attention_bias", True)
    qk_norm = cfg.flag("use_qk_norm", False)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        out += _attn(i, hp, bias=bias, qk_norm=qk_norm)
        out.append((p + "post_attention_norm.weight", (hp.n_embd,)))
        if i < hp.n_layer_dense_lead:
            out += _ffn(i, hp.n_embd, hp.n_ff[i])
        else:
            out += [(p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)), (p + "exp_probs_b.bias", (hp.n_expert,))]
            out += _experts(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            if hp.n_ff_shexp:
                out += _ffn(i, hp.n_embd, hp.n_ff_shexp, suffix="_shexp")
        if i >= n_trunk:
            out += [
                (p + "nextn.eh_proj.weight", (2 * hp.n_embd, hp.n_embd)),
                (p + "nextn.enorm.weight", (hp.n_embd,)),
                (p + "nextn.hnorm.weight", (hp.n_embd,)),
                (p + "nextn.shared_head_norm.weight", (hp.n_embd,)),
            ]
    return out


# --- qwen3next (Qwen3-Next: gated delta net + gated attention, MoE with shared expert, MTP) ---------


def _hp_qwen3next(cfg: _Config) -> Hparams:
    n_trunk = cfg.int("num_hidden_layers")
    n_nextn = cfg.int("mtp_num_hidden_layers", "num_nextn_predict_layers", default=1)
    n_layer = n_trunk + n_nextn
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == n_trunk:
        recurrent = [t == "linear_attention" for t in layer_types]
    else:
        interval = cfg.int("full_attention_interval", default=4)
        recurrent = [(i + 1) % interval != 0 for i in range(n_trunk)]
    recurrent += [False] * n_nextn
    n_head_kv = cfg.int("num_key_value_heads")
    head_dim = _head_dim(cfg)
    n_v_heads = cfg.int("linear_num_value_heads")
    n_ff_exp = cfg.int("moe_intermediate_size")
    return Hparams(
        n_layer=n_layer,
        n_embd=cfg.int("hidden_size"),
        n_vocab=cfg.int("vocab_size"),
        n_ctx_train=_ctx(cfg),
        n_head=_per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=tuple(0 if r else n_head_kv for r in recurrent),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=_per_layer(n_layer, cfg.int("intermediate_size", default=n_ff_exp)),
        n_expert=cfg.int("num_experts"),
        n_expert_used=cfg.int("num_experts_per_tok"),
        n_expert_shared=1 if cfg.int("shared_expert_intermediate_size", default=0) else 0,
        n_ff_exp=n_ff_exp,
        n_ff_shexp=cfg.int("shared_expert_intermediate_size", default=0),
        ssm_d_conv=cfg.int("linear_conv_kernel_dim"),
        ssm_d_inner=cfg.int("linear_value_head_dim") * n_v_heads,
        ssm_d_state=cfg.int("linear_key_head_dim"),
        ssm_n_group=cfg.int("linear_num_key_heads"),
        ssm_dt_rank=n_v_heads,
        recurrent=tuple(recurrent),
        n_nextn_layer=n_nextn,
        rope_freq_base=cfg.float("rope_theta", default=10000.0),
    )


def _ts_qwen3next(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg)
    n_trunk = hp.n_layer - hp.n_nextn_layer
    key_dim = hp.ssm_d_state * hp.ssm_n_group
    value_dim = hp.ssm_d_inner
    head_v_dim = hp.ssm_d_inner // hp.ssm_dt_rank
    n_ff_shexp = hp.n_ff_shexp or hp.n_ff[0]
    n_kv = cfg.int("num_key_value_heads")
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out += [(p + "attn_norm.weight", (hp.n_embd,)), (p + "post_attention_norm.weight", (hp.n_embd,))]
        if hp.recurrent[i]:
            out += [
                (p + "attn_qkv.weight", (hp.n_embd, key_dim * 2 + value_dim)),
                (p + "attn_gate.weight", (hp.n_embd, value_dim)),
                (p + "ssm_conv1d.weight", (hp.ssm_d_conv, key_dim * 2 + value_dim)),
                (p + "ssm_dt.bias", (hp.ssm_dt_rank,)),
                (p + "ssm_a", (hp.ssm_dt_rank,)),
                (p + "ssm_ba.weight", (hp.n_embd, 2 * hp.ssm_dt_rank)),
                (p + "ssm_norm.weight", (head_v_dim,)),
                (p + "ssm_out.weight", (value_dim, hp.n_embd)),
            ]
        else:
            hd = hp.n_embd_head_k
            out += [
                (p + "attn_q.weight", (hp.n_embd, hd * hp.n_head[i] * 2)),
                (p + "attn_k.weight", (hp.n_embd, hd * n_kv)),
                (p + "attn_v.weight", (hp.n_embd, hd * n_kv)),
                (p + "attn_output.weight", (hd * hp.n_head[i], hp.n_embd)),
                (p + "attn_q_norm.weight", (hd,)),
                (p + "attn_k_norm.weight", (hd,)),
            ]
        out.append((p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
        out += _experts(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
        out.append((p + "ffn_gate_inp_shexp.weight", (hp.n_embd,)))
        out += _ffn(i, hp.n_embd, n_ff_shexp, suffix="_shexp")
        if i >= n_trunk:
            out += [
                (p + "nextn.eh_proj.weight", (2 * hp.n_embd, hp.n_embd)),
                (p + "nextn.enorm.weight", (hp.n_embd,)),
                (p + "nextn.hnorm.weight", (hp.n_embd,)),
                (p + "nextn.shared_head_norm.weight", (hp.n_embd,)),
            ]
    return out


# --- granitehybrid (Granite 4.0 H: Mamba-2 + attention, dense or MoE with shared expert) ------------


def _hp_granitehybrid(cfg: _Config) -> Hparams:
    n_layer = cfg.int("num_hidden_layers")
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == n_layer:
        attn = [t == "attention" for t in layer_types]
    else:
        indices = cfg.get("attn_layer_indices", default=[])
        attn = [i in indices for i in range(n_layer)]
    n_expert = cfg.int("num_local_experts", default=0)
    n_embd = cfg.int("hidden_size")
    n_ff = cfg.int("intermediate_size") if n_expert else cfg.int("shared_intermediate_size", "intermediate_size")
    n_head_kv = cfg.int("num_key_value_heads")
    n_ssm_head = cfg.int("mamba_n_heads", "mamba_num_heads")
    has_ssm = not all(attn)
    head_dim = cfg.int("head_dim", default=n_embd // cfg.int("num_attention_heads"))
    return Hparams(
        n_layer=n_layer,
        n_embd=n_embd,
        n_vocab=_vocab(cfg, 8 if has_ssm else 1),
        n_ctx_train=2**20 if has_ssm else _ctx(cfg),
        n_head=_per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=tuple(n_head_kv if a else 0 for a in attn),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=_per_layer(n_layer, n_ff),
        n_expert=n_expert,
        n_expert_used=cfg.int("num_experts_per_tok", default=0),
        n_expert_shared=1 if n_expert and cfg.int("shared_intermediate_size", default=0) else 0,
        n_ff_exp=n_ff if n_expert else 0,
        n_ff_shexp=cfg.int("shared_intermediate_size", default=0) if n_expert else 0,
        ssm_d_conv=cfg.int("mamba_d_conv", "conv_kernel"),
        ssm_d_inner=cfg.int("mamba_expand", default=2) * n_embd,
        ssm_d_state=cfg.int("mamba_d_state", "ssm_state_size"),
        ssm_n_group=cfg.int("mamba_n_groups", "n_groups"),
        ssm_dt_rank=n_ssm_head,
        recurrent=tuple(not a for a in attn),
        rope_freq_base=cfg.float("rope_theta", default=10000.0),
    )


def _ts_granitehybrid(hp: Hparams, cfg: _Config) -> Shapes:
    out = _globals(hp, cfg, tied_default=True)
    conv_bias = cfg.flag("mamba_conv_bias", True)
    bias = cfg.flag("attention_bias", False)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        if hp.recurrent[i]:
            out += _ssm2(i, hp, conv_bias=conv_bias)
        else:
            out += _attn(i, hp, bias=bias, out_bias=bias)
        out.append((p + "ffn_norm.weight", (hp.n_embd,)))
        if hp.n_expert:
            out.append((p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
            out += _experts(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            if hp.n_ff_shexp:
                out += _ffn(i, hp.n_embd, hp.n_ff_shexp, suffix="_shexp")
        else:
            out += _ffn(i, hp.n_embd, hp.n_ff[i])
    return out


@dataclass(frozen=True, slots=True)
class _Arch:
    hparams: Callable[[_Config], Hparams]
    tensors: Callable[[Hparams, _Config], Shapes]


_ARCHS: dict[str, _Arch] = {
    "llama": _Arch(_hp_llama, _ts_llama),
    "mistral3": _Arch(_hp_llama, _ts_llama),
    "qwen2": _Arch(_hp_llama, _ts_qwen2),
    "qwen3": _Arch(_hp_llama, _ts_qwen3),
    "qwen3moe": _Arch(_hp_qwen3moe, _ts_qwen3moe),
    "phi3": _Arch(_hp_llama, _ts_phi3),
    "gemma3": _Arch(_hp_gemma3, _ts_gemma3),
    "gpt-oss": _Arch(_hp_gpt_oss, _ts_gpt_oss),
    "deepseek2": _Arch(_hp_deepseek2, _ts_deepseek2),
    "glm4moe": _Arch(_hp_glm4moe, _ts_glm4moe),
    "qwen3next": _Arch(_hp_qwen3next, _ts_qwen3next),
    "granitehybrid": _Arch(_hp_granitehybrid, _ts_granitehybrid),
    "nemotron_h": _Arch(_hp_nemotron_h, _ts_nemotron_h),
    "nemotron_h_moe": _Arch(_hp_nemotron_h, _ts_nemotron_h),
}

ARCHITECTURES: tuple[str, ...] = tuple(_ARCHS)


# ---------------------------------------------------------------------------------------------
# public API


def _config(config: Mapping[str, Any]) -> tuple[_Config, str]:
    cfg = _Config(config)
    arch = _detect_arch(cfg)
    if arch not in _ARCHS:
        raise ModelError(f"config.json: architecture {arch!r} is not supported yet", architecture=arch)
    cfg.arch = arch
    n_layer = cfg.get("num_hidden_layers")
    if isinstance(n_layer, int) and not 0 < n_layer <= _MAX_LAYERS:
        raise ModelError(
            f"config.json: num_hidden_layers must be between 1 and {_MAX_LAYERS}, got {n_layer}",
            architecture=arch,
            key="num_hidden_layers",
        )
    return cfg, arch


def hparams_from_config(config: Mapping[str, Any]) -> tuple[str, Hparams]:
    """The llama.cpp architecture name and hyperparameters of a Hugging Face config.json."""
    cfg, arch = _config(config)
    hp = _ARCHS[arch].hparams(cfg)
    _check_positive(hp, arch)
    return arch, hp


def _check_positive(hp: Hparams, arch: str) -> None:
    for key in ("n_layer", "n_embd", "n_vocab", "n_embd_head_k"):
        if getattr(hp, key) <= 0:
            raise ModelError(f"config.json: {key} must be positive ({arch})", architecture=arch, key=key)
    if hp.n_layer > _MAX_LAYERS or hp.n_embd > 1 << 20 or hp.n_vocab > 1 << 24:
        raise ModelError(f"config.json: implausible sizes ({arch}: {hp.n_layer} layers, {hp.n_embd} wide)")


def tensor_shapes(arch: str, hparams: Hparams, config: Mapping[str, Any]) -> Shapes:
    """Every tensor (name, shape in GGML order) of the GGUF the converter writes for this model."""
    if arch not in _ARCHS:
        raise ModelError(f"architecture {arch!r} is not supported yet", architecture=arch)
    cfg = _Config(config)
    cfg.arch = arch
    return _ARCHS[arch].tensors(hparams, cfg)


def _source_types(arch: str, tensors: Sequence[tuple[str, tuple[int, ...]]]) -> list[str]:
    types = [converter_type(n, s) for n, s in tensors]
    if arch == "gpt-oss":
        # gpt-oss ships its experts in MXFP4; the converter repacks them without requantizing
        types = ["MXFP4" if "_exps.weight" in n else t for (n, _), t in zip(tensors, types, strict=True)]
    return types


def _layers(hp: Hparams, tensors: Sequence[tuple[str, tuple[int, ...]]]) -> tuple[LayerInfo, ...]:
    names: list[set[str]] = [set() for _ in range(hp.n_layer)]
    for name, _ in tensors:
        i = layer_index_of(name)
        if i is not None and i < hp.n_layer:
            names[i].add(name.split(".", 2)[2])
    layers = []
    n_trunk = hp.n_layer - hp.n_nextn_layer
    for i, parts in enumerate(names):
        layers.append(
            LayerInfo(
                index=i,
                has_attention=hp.n_head_kv[i] > 0,
                has_recurrent=bool(hp.recurrent[i]) if hp.recurrent else False,
                has_moe=any("_exps." in p for p in parts),
                has_dense_ffn=any(p.startswith(("ffn_down.", "ffn_up.")) for p in parts),
                sliding_window=bool(hp.swa_layers[i]) if hp.swa_layers else False,
                is_nextn=i >= n_trunk,
            )
        )
    return tuple(layers)


def _gguf_string_bytes(text: str) -> int:
    return 8 + len(text.encode("utf-8"))


def estimate_header_bytes(hparams: Hparams, tensors: Sequence[tuple[str, tuple[int, ...]]]) -> int:
    """Bytes of a GGUF header before the tensor data, padding to the alignment included.

    Exact for the fixed part and the tensor infos; the metadata is estimated: about 2 KiB of
    architecture keys, the tokenizer's token list (8-byte length + about 7 bytes of text per token
    for byte-level BPE vocabularies), token types (4 bytes per token), merges (about 1 per token,
    8 + 12 bytes each) and a chat template (about 8 KiB). The total is within a few MiB of
    published files, which is below 0.1 % of any catalog model.
    """
    fixed = 4 + 4 + 8 + 8
    infos = sum(_gguf_string_bytes(n) + 4 + 8 * len(s) + 4 + 8 for n, s in tensors)
    n_vocab = hparams.n_vocab
    metadata = 2048 + 8192 + n_vocab * (8 + 7) + n_vocab * 4 + n_vocab * (8 + 12)
    size = fixed + infos + metadata
    return size + (-size % GGUF_ALIGNMENT)


def _file_bytes(hparams: Hparams, tensors: Sequence[tuple[str, tuple[int, ...]]], nbytes: Sequence[int]) -> int:
    data = sum(b + (-b % GGUF_ALIGNMENT) for b in nbytes)
    return estimate_header_bytes(hparams, tensors) + data


def spec_from_config(
    config: Mapping[str, Any],
    quant: str,
    *,
    name: str = "",
    model_id: str = "",
    gguf_repo: str = "",
    source: str = "",
    imatrix: bool = False,
) -> ModelSpec:
    """The ModelSpec of the GGUF llama.cpp would produce from this config at file type ``quant``.

    ``imatrix``: the file is quantized with an importance matrix (as most published quants are); it
    changes a few choices (Q4_0/Q5_0 and IQ4 ``ffn_down`` of the first layers) and is required for
    ``IMATRIX_FILE_TYPES``.
    """
    arch, hp = hparams_from_config(config)
    shapes = tensor_shapes(arch, hp, config)
    types = predict_types(arch, hp, shapes, quant, imatrix=imatrix, source_types=_source_types(arch, shapes))
    infos = []
    for (tname, shape), ttype in zip(shapes, types, strict=True):
        infos.append(
            TensorInfo(
                name=tname,
                shape=shape,
                ggml_type=ttype,
                nbytes=tensor_nbytes(shape, ttype),
                layer=layer_index_of(tname),
                role=role_of(tname),
            )
        )
    file_bytes = _file_bytes(hp, shapes, [t.nbytes for t in infos])
    return ModelSpec(
        architecture=arch,
        name=name or str(config.get("_name_or_path", "") or model_id or arch),
        hparams=hp,
        layers=_layers(hp, shapes),
        tensors=tuple(infos),
        ftype=quant,
        file_bytes=file_bytes,
        metadata={"predicted": True, "header_bytes_estimated": estimate_header_bytes(hp, shapes)},
        source=source,
        model_id=model_id,
        gguf_repo=gguf_repo,
    )


def quant_ladder(config: Mapping[str, Any], *, imatrix: bool = False) -> list[QuantSize]:
    """Predicted sizes of every standard file type (MXFP4_MOE only for MoE models)."""
    arch, hp = hparams_from_config(config)
    shapes = tensor_shapes(arch, hp, config)
    sources = _source_types(arch, shapes)
    n_params = sum(math.prod(s) for _, s in shapes)
    is_moe = any(len(s) > 2 and s[2] > 1 for _, s in shapes)
    ladder = []
    for ftype in FILE_TYPES:
        if ftype == "MXFP4_MOE" and not is_moe:
            continue
        types = predict_types(arch, hp, shapes, ftype, imatrix=imatrix, source_types=sources)
        nbytes = [tensor_nbytes(s, t) for (_, s), t in zip(shapes, types, strict=True)]
        tensor_bytes = sum(nbytes)
        ladder.append(
            QuantSize(
                name=ftype,
                tensor_bytes=tensor_bytes,
                file_bytes=_file_bytes(hp, shapes, nbytes),
                bits_per_weight=round(8 * tensor_bytes / n_params, 3),
            )
        )
    return ladder
