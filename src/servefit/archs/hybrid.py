"""Hybrid recurrent architectures: nemotron_h / nemotron_h_moe (Mamba-2), qwen3next (gated delta net), granitehybrid."""

from __future__ import annotations

from servefit.archs.common import (
    Config,
    Shapes,
    attn_tensors,
    expert_tensors,
    ffn_tensors,
    global_tensors,
    head_dim_of,
    per_layer,
    train_context,
    vocab_size,
)
from servefit.errors import ModelError
from servefit.model import Hparams

__all__ = ["hp_granitehybrid", "hp_nemotron_h", "hp_qwen3next", "ts_granitehybrid", "ts_nemotron_h", "ts_qwen3next"]


# --- nemotron_h / nemotron_h_moe (Nemotron-H, Nemotron 3 Nano/Super) ------------------------------


def nemotron_pattern(cfg: Config) -> list[str]:
    pattern = cfg.get("hybrid_override_pattern", "layer_pattern", "layers_block_type")
    if isinstance(pattern, str):
        return list(pattern)
    if isinstance(pattern, list):
        kinds = {"mamba": "M", "linear_attention": "M", "attention": "*", "full_attention": "*", "moe": "E", "mlp": "-"}
        return [kinds.get(str(x), "-") for x in pattern]
    raise ModelError("config.json: missing key 'hybrid_override_pattern' (nemotron_h)", key="hybrid_override_pattern")


def hp_nemotron_h(cfg: Config) -> Hparams:
    pattern = nemotron_pattern(cfg)
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
        n_vocab=vocab_size(cfg, 8),
        n_ctx_train=train_context(cfg) if use_rope else 2**20,
        n_head=per_layer(n_layer, n_head),
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


def ssm2_tensors(i: int, hp: Hparams, *, conv_bias: bool) -> Shapes:
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


def nemotron_moe_tensors(i: int, hp: Hparams) -> Shapes:
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
    out += expert_tensors(i, moe_n_embd, hp.n_ff_exp, hp.n_expert, gate=False)
    if hp.n_ff_shexp:
        out += [
            (p + "ffn_down_shexp.weight", (hp.n_ff_shexp, hp.n_embd)),
            (p + "ffn_up_shexp.weight", (hp.n_embd, hp.n_ff_shexp)),
        ]
    return out


def ts_nemotron_h(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
    n_trunk = hp.n_layer - hp.n_nextn_layer
    conv_bias = cfg.flag("use_conv_bias", True)
    attn_bias = cfg.flag("attention_bias", False)
    mlp_bias = cfg.flag("mlp_bias", False)
    for i in range(n_trunk):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        if hp.recurrent[i]:
            out += ssm2_tensors(i, hp, conv_bias=conv_bias)
        elif hp.n_ff[i] == 0:
            out += attn_tensors(i, hp, bias=attn_bias, out_bias=attn_bias)
        elif hp.n_expert:
            out += nemotron_moe_tensors(i, hp)
        else:
            out += ffn_tensors(i, hp.n_embd, hp.n_ff[i], gate=False)
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
        out += attn_tensors(i, hp, bias=attn_bias, out_bias=attn_bias)
        out.append((p + "post_attention_norm.weight", (hp.n_embd,)))
        out += nemotron_moe_tensors(i, hp)
    return out


# --- qwen3next (Qwen3-Next: gated delta net + gated attention, MoE with shared expert, MTP) ---------


def hp_qwen3next(cfg: Config) -> Hparams:
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
    head_dim = head_dim_of(cfg)
    n_v_heads = cfg.int("linear_num_value_heads")
    n_ff_exp = cfg.int("moe_intermediate_size")
    return Hparams(
        n_layer=n_layer,
        n_embd=cfg.int("hidden_size"),
        n_vocab=cfg.int("vocab_size"),
        n_ctx_train=train_context(cfg),
        n_head=per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=tuple(0 if r else n_head_kv for r in recurrent),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=per_layer(n_layer, cfg.int("intermediate_size", default=n_ff_exp)),
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


def ts_qwen3next(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg)
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
        out += expert_tensors(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
        out.append((p + "ffn_gate_inp_shexp.weight", (hp.n_embd,)))
        out += ffn_tensors(i, hp.n_embd, n_ff_shexp, suffix="_shexp")
        if i >= n_trunk:
            out += [
                (p + "nextn.eh_proj.weight", (2 * hp.n_embd, hp.n_embd)),
                (p + "nextn.enorm.weight", (hp.n_embd,)),
                (p + "nextn.hnorm.weight", (hp.n_embd,)),
                (p + "nextn.shared_head_norm.weight", (hp.n_embd,)),
            ]
    return out


# --- granitehybrid (Granite 4.0 H: Mamba-2 + attention, dense or MoE with shared expert) ------------


def hp_granitehybrid(cfg: Config) -> Hparams:
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
        n_vocab=vocab_size(cfg, 8 if has_ssm else 1),
        n_ctx_train=2**20 if has_ssm else train_context(cfg),
        n_head=per_layer(n_layer, cfg.int("num_attention_heads")),
        n_head_kv=tuple(n_head_kv if a else 0 for a in attn),
        n_embd_head_k=head_dim,
        n_embd_head_v=head_dim,
        n_ff=per_layer(n_layer, n_ff),
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


def ts_granitehybrid(hp: Hparams, cfg: Config) -> Shapes:
    out = global_tensors(hp, cfg, tied_default=True)
    conv_bias = cfg.flag("mamba_conv_bias", True)
    bias = cfg.flag("attention_bias", False)
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        out.append((p + "attn_norm.weight", (hp.n_embd,)))
        if hp.recurrent[i]:
            out += ssm2_tensors(i, hp, conv_bias=conv_bias)
        else:
            out += attn_tensors(i, hp, bias=bias, out_bias=bias)
        out.append((p + "ffn_norm.weight", (hp.n_embd,)))
        if hp.n_expert:
            out.append((p + "ffn_gate_inp.weight", (hp.n_embd, hp.n_expert)))
            out += expert_tensors(i, hp.n_embd, hp.n_ff_exp, hp.n_expert)
            if hp.n_ff_shexp:
                out += ffn_tensors(i, hp.n_embd, hp.n_ff_shexp, suffix="_shexp")
        else:
            out += ffn_tensors(i, hp.n_embd, hp.n_ff[i])
    return out
