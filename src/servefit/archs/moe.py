"""Mixture-of-experts architectures: qwen3moe, gpt-oss, deepseek2 (MLA), glm4moe."""

from __future__ import annotations

from servefit.archs.common import (
    Config,
    Shapes,
    attn_tensors,
    dense_hparams,
    expert_tensors,
    ffn_tensors,
    global_tensors,
    head_dim_of,
    per_layer,
    train_context,
)
from servefit.model import Hparams

__all__ = [
    "hp_deepseek2",
    "hp_glm4moe",
    "hp_gpt_oss",
    "hp_qwen3moe",
    "ts_deepseek2",
    "ts_glm4moe",
    "ts_gpt_oss",
    "ts_qwen3moe",
]


def hp_qwen3moe(cfg: Config) -> Hparams:
    n_expert = cfg.int("num_experts", "n_routed_experts")
    n_ff_exp = cfg.int("moe_intermediate_size")
    return dense_hparams(
        cfg,
        n_ff=cfg.int("intermediate_size", default=0),
        n_expert=n_expert,
        n_expert_used=cfg.int("num_experts_per_tok"),
        n_ff_exp=n_ff_exp,
    )


def ts_qwen3moe(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        out += attn_tensors(i, hp, qk_norm=True, bias=cfg.flag("attention_bias", False))
        out.append((p + "ffn_norm.weight", (hp.n_embd,)))
        out.append((p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
        out += expert_tensors(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
    return out


# --- gpt-oss -------------------------------------------------------------------------------------


def hp_gpt_oss(cfg: Config) -> Hparams:
    n_layer = cfg.int("num_hidden_layers")
    n_ff_exp = cfg.int("intermediate_size")
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and len(layer_types) == n_layer:
        swa = tuple(t == "sliding_attention" for t in layer_types)
    else:
        swa = tuple(i % 2 < 1 for i in range(n_layer))
    return dense_hparams(
        cfg,
        n_ff=n_ff_exp,
        n_expert=cfg.int("num_local_experts", "num_experts"),
        n_expert_used=cfg.int("num_experts_per_tok", "experts_per_token"),
        n_ff_exp=n_ff_exp,
        n_swa=cfg.int("sliding_window", default=128),
        swa_layers=swa,
    )


def ts_gpt_oss(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out += [(p + "attn_norm.weight", (hp.n_embd,)), (p + "post_attention_norm.weight", (hp.n_embd,))]
        out += attn_tensors(i, hp, bias=True, out_bias=True)
        out += [(p + "attn_sinks.weight", (hp.n_head[i],)), (p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert))]
        out.append((p + "ffn_gate_inp.bias", (hp.n_expert,)))
        out += expert_tensors(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
        out += [
            (p + "ffn_gate_exps.bias", (hp.n_ff_exp, hp.n_expert)),
            (p + "ffn_down_exps.bias", (hp.n_embd, hp.n_expert)),
            (p + "ffn_up_exps.bias", (hp.n_ff_exp, hp.n_expert)),
        ]
    return out


# --- deepseek2 (DeepSeek V3/R1, Kimi K2): MLA, dense lead layers, shared experts --------------------


def hp_deepseek2(cfg: Config) -> Hparams:
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
        n_ctx_train=train_context(cfg),
        n_head=per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=per_layer(n_layer, 1),  # MLA is converted as MQA over the compressed KV
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


def ts_deepseek2(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
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
            out += ffn_tensors(i, hp.n_embd, hp.n_ff[i])
        else:
            out.append((p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
            if cfg.get("topk_method") == "noaux_tc" or cfg.has("e_score_correction_bias"):
                out.append((p + "exp_probs_b.bias", (hp.n_expert,)))
            out += expert_tensors(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            if hp.n_ff_shexp:
                out += ffn_tensors(i, hp.n_embd, hp.n_ff_shexp, suffix="_shexp")
    return out


# --- glm4moe (GLM-4.5, GLM-4.6): dense lead layers, shared expert, next-n layer ---------------------


def hp_glm4moe(cfg: Config) -> Hparams:
    n_trunk = cfg.int("num_hidden_layers")
    n_nextn = cfg.int("num_nextn_predict_layers", default=0)
    n_layer = n_trunk + n_nextn
    dense_lead = cfg.int("first_k_dense_replace", default=0)
    n_ff = cfg.int("intermediate_size")
    n_ff_exp = cfg.int("moe_intermediate_size")
    head_dim = head_dim_of(cfg)
    return Hparams(
        n_layer=n_layer,
        n_embd=cfg.int("hidden_size"),
        n_vocab=cfg.int("vocab_size"),
        n_ctx_train=train_context(cfg),
        n_head=per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=per_layer(n_layer, cfg.int("num_key_value_heads")),
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


def ts_glm4moe(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
    n_trunk = hp.n_layer - hp.n_nextn_layer
    bias = cfg.flag("attention_bias", True)
    qk_norm = cfg.flag("use_qk_norm", False)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        out += attn_tensors(i, hp, bias=bias, qk_norm=qk_norm)
        out.append((p + "post_attention_norm.weight", (hp.n_embd,)))
        if i < hp.n_layer_dense_lead:
            out += ffn_tensors(i, hp.n_embd, hp.n_ff[i])
        else:
            out += [(p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)), (p + "exp_probs_b.bias", (hp.n_expert,))]
            out += expert_tensors(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            if hp.n_ff_shexp:
                out += ffn_tensors(i, hp.n_embd, hp.n_ff_shexp, suffix="_shexp")
        if i >= n_trunk:
            out += [
                (p + "nextn.eh_proj.weight", (2 * hp.n_embd, hp.n_embd)),
                (p + "nextn.enorm.weight", (hp.n_embd,)),
                (p + "nextn.hnorm.weight", (hp.n_embd,)),
                (p + "nextn.shared_head_norm.weight", (hp.n_embd,)),
            ]
    return out
