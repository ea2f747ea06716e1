"""Dense transformer architectures: llama (Llama 3.x, Mistral, Mixtral), qwen2, qwen3, gemma3, phi3."""

from __future__ import annotations

from servefit.archs.common import (
    Config,
    Shapes,
    attn_tensors,
    dense_hparams,
    expert_tensors,
    ffn_tensors,
    global_tensors,
    per_layer,
)
from servefit.model import Hparams

__all__ = ["hp_gemma3", "hp_llama", "ts_gemma3", "ts_llama", "ts_phi3", "ts_qwen2", "ts_qwen3"]


# --- llama (Llama 3.x, Mistral), qwen2, qwen3, phi3 -----------------------------------------------


def hp_llama(cfg: Config) -> Hparams:
    n_expert = cfg.int("num_local_experts", default=0)
    if n_expert:  # Mixtral: the llama architecture with routed experts
        n_ff = cfg.int("intermediate_size")
        return dense_hparams(cfg, n_expert=n_expert, n_expert_used=cfg.int("num_experts_per_tok"), n_ff_exp=n_ff)
    return dense_hparams(cfg)


def ts_llama(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
    rope = cfg.rope()
    if str(rope.get("rope_type", rope.get("type", ""))).lower() == "llama3":
        out.append(("rope_freqs.weight", (hp.n_embd_head_k // 2,)))
    bias = cfg.flag("attention_bias", False)
    for i in range(hp.n_layer):
        out.append((f"blk.{i}.attn_norm.weight", (hp.n_embd,)))
        out += attn_tensors(i, hp, bias=bias, out_bias=bias)
        out.append((f"blk.{i}.ffn_norm.weight", (hp.n_embd,)))
        if hp.n_expert:
            out.append((f"blk.{i}.ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
            out += expert_tensors(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            continue
        out += ffn_tensors(i, hp.n_embd, hp.n_ff[i])
        if cfg.flag("mlp_bias", False):
            p = f"blk.{i}."
            out += [
                (p + "ffn_gate.bias", (hp.n_ff[i],)),
                (p + "ffn_down.bias", (hp.n_embd,)),
                (p + "ffn_up.bias", (hp.n_ff[i],)),
            ]
    return out


def ts_qwen2(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
    for i in range(hp.n_layer):
        out.append((f"blk.{i}.attn_norm.weight", (hp.n_embd,)))
        out += attn_tensors(i, hp, bias=True)
        out.append((f"blk.{i}.ffn_norm.weight", (hp.n_embd,)))
        out += ffn_tensors(i, hp.n_embd, hp.n_ff[i])
    return out


def ts_qwen3(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
    for i in range(hp.n_layer):
        out.append((f"blk.{i}.attn_norm.weight", (hp.n_embd,)))
        out += attn_tensors(i, hp, qk_norm=True, bias=cfg.flag("attention_bias", False))
        out.append((f"blk.{i}.ffn_norm.weight", (hp.n_embd,)))
        out += ffn_tensors(i, hp.n_embd, hp.n_ff[i])
    return out


# --- gemma3 ------------------------------------------------------------------------------------------


def hp_gemma3(cfg: Config) -> Hparams:
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
        n_head=per_layer(n_layer, n_head),
        n_head_kv=per_layer(n_layer, n_head_kv),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=per_layer(n_layer, cfg.int("intermediate_size", default=9216)),
        n_swa=n_swa,
        swa_layers=swa,
        rope_freq_base=cfg.float("rope_theta", default=1_000_000.0),
    )


def ts_gemma3(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg, tied_default=True)
    out = [t for t in out if t[0] != "output.weight"]  # Gemma always ties its output to the embeddings
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        out += attn_tensors(i, hp, qk_norm=True)
        out.append((p + "post_attention_norm.weight", (hp.n_embd,)))
        out.append((p + "ffn_norm.weight", (hp.n_embd,)))
        out += ffn_tensors(i, hp.n_embd, hp.n_ff[i])
        out.append((p + "post_ffw_norm.weight", (hp.n_embd,)))
    return out


# --- phi3 (Phi-3, Phi-4) ---------------------------------------------------------------------------


def ts_phi3(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
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
