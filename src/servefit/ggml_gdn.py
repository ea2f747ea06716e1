"""Graph builder of qwen3next (Qwen3-Next): gated delta net layers and gated full attention.

Restates src/models/qwen3next.cpp and src/models/delta-net-base.cpp. A linear-attention layer
projects the fused Q/K/V (``attn_qkv``), the output gate (``attn_gate``) and the per-head beta and
alpha (``ssm_ba``); Q/K/V go through the short causal convolution against the conv state
(``build_conv_state``), Q and K are L2-normalised (``ggml_rms_norm`` then ``ggml_scale``) and
repeated up to the value heads, and one ``GATED_DELTA_NET`` op (the fused kernel the CPU backend
offers, so ``fused_gdn_ch`` resolves to on) returns the outputs and the new state, which is copied
back to the recurrent cache. Every ``full_attention_interval``-th layer attends with a sigmoid
output gate carried in the second half of Q's projection. Every layer runs the MoE with a
sigmoid-gated shared expert; the next-token-prediction layers have their own graph.
"""

from __future__ import annotations

from servefit.ggml_alloc import FLAG_OUTPUT, Tensor
from servefit.ggml_blocks import GraphBuilder

__all__ = ["build_qwen3next", "gdn_supported"]


def gdn_supported(names: frozenset[str]) -> bool:
    """qwen3next files rebuilt here: fused ``attn_qkv`` + ``attn_gate`` projections, separate gate/up experts."""
    recurrent = [n for n in names if n.endswith(".ssm_conv1d.weight")]
    return all(n.replace("ssm_conv1d", "attn_gate") in names for n in recurrent) and not any(
        n.endswith("ffn_gate_up_exps.weight") for n in names
    )


def _gdn_layer(g: GraphBuilder, rs: dict[str, Tensor], il: int, cur: Tensor) -> Tensor:
    hp, p = g.hp, g.p
    b = f"blk.{il}."
    e = hp.n_embd
    n_seqs = p.n_seqs
    n_st = p.n_tokens // n_seqs
    d_k, n_k, n_v = hp.ssm_d_state, hp.ssm_n_group, hp.ssm_dt_rank
    d_v = hp.ssm_d_inner // n_v
    key_dim, value_dim = d_k * n_k, d_v * n_v
    conv_dim = 2 * key_dim + value_dim
    d_conv = hp.ssm_d_conv
    qkv = g.mul_mat(g.w(b + "attn_qkv.weight", e, conv_dim), cur)
    qkv = g.reshape(qkv, conv_dim, n_st, n_seqs)
    z = g.mul_mat(g.w(b + "attn_gate.weight", e, value_dim), cur)
    ba = g.mul_mat(g.w(b + "ssm_ba.weight", e, 2 * n_v), cur)
    ba = g.reshape(ba, 2 * n_v // n_k, n_k, n_st, n_seqs)
    per = n_v // n_k
    beta = g.view(ba, (per, n_k, n_st, n_seqs), ba.nb[1:])
    alpha = g.view(ba, (per, n_k, n_st, n_seqs), ba.nb[1:], per * 4)
    beta = g.unary(g.cont(beta))  # sigmoid
    alpha = g.cont(alpha, n_v, n_st, n_seqs)
    gate = g.mul(g.unary(g.add(alpha, g.w(b + "ssm_dt.bias", n_v))), g.w(b + "ssm_a", n_v))  # softplus
    beta = g.reshape(beta, 1, n_v, n_st, n_seqs)
    gate = g.reshape(gate, 1, n_v, n_st, n_seqs)
    n_embd_r = (d_conv - 1) * conv_dim
    n_embd_s = d_v * d_v * n_v
    conv_all = g.weight("f32", n_embd_r, p.n_rs, name=f"cache_r_l{il}")
    ssm_all = g.weight("f32", n_embd_s, p.n_rs, name=f"cache_s_l{il}")
    # build_conv_state
    conv = g.reshape(g.rs(rs, conv_all, n_embd_r), d_conv - 1, conv_dim, n_seqs)
    conv_in = g.concat(conv, g.transpose(qkv), 0)
    last = g.view(conv_in, (d_conv - 1, conv_dim, n_seqs), (conv_in.nb[1], conv_in.nb[2]), n_st * 4)
    g.expand(g.cpy(last, g.view(conv_all, (n_embd_r, n_seqs), (conv_all.nb[1],))))
    state = g.reshape(g.rs(rs, ssm_all, n_embd_s), d_v, d_v, n_v, n_seqs)
    conv_out = g.tensor(
        "f32", conv_dim, n_st, n_seqs, op="SSM_CONV", src=(conv_in, g.w(b + "ssm_conv1d.weight", d_conv, conv_dim))
    )
    conv_out = g.unary(conv_out)  # silu
    row = conv_dim * 4
    q = g.view(conv_out, (d_k, n_k, n_st, n_seqs), (d_k * 4, row, row * n_st))
    k = g.view(conv_out, (d_k, n_k, n_st, n_seqs), (d_k * 4, row, row * n_st), key_dim * 4)
    v = g.view(conv_out, (d_v, n_v, n_st, n_seqs), (d_v * 4, row, row * n_st), 2 * key_dim * 4)
    q = g.scale(g.rms_norm(q))
    k = g.scale(g.rms_norm(k))
    if n_k != n_v:
        rep = n_v // n_k
        q = g.reshape(
            g.repeat(g.reshape(q, d_k, 1, n_k, n_st * n_seqs), d_k, rep, n_k, n_st * n_seqs), d_k, n_v, n_st, n_seqs
        )
        k = g.reshape(
            g.repeat(g.reshape(k, d_k, 1, n_k, n_st * n_seqs), d_k, rep, n_k, n_st * n_seqs), d_k, n_v, n_st, n_seqs
        )
    # build_recurrent_attn -> build_delta_net_fused
    res = g.tensor(
        "f32", d_v * n_v, n_st * n_seqs + d_v * n_seqs, op="GATED_DELTA_NET", src=(q, k, v, gate, beta, state)
    )
    out = g.view(res, (d_v, n_v, n_st, n_seqs), (d_v * 4, d_v * n_v * 4, d_v * n_v * n_st * 4))
    new_state = g.view(
        res, (d_v, d_v, n_v, n_seqs), (d_v * 4, d_v * d_v * 4, d_v * d_v * n_v * 4), d_v * n_v * n_st * n_seqs * 4
    )
    g.expand(g.cpy(new_state, g.view(ssm_all, (n_embd_s, n_seqs), (ssm_all.nb[1],))))
    z4 = g.reshape(z, d_v, n_v, n_st, n_seqs)
    y = g.mul(g.norm_rms(out, g.w(b + "ssm_norm.weight", d_v)), g.unary(z4))
    y = g.reshape(y, value_dim, n_st, n_seqs)
    y = g.mul_mat(g.w(b + "ssm_out.weight", value_dim, e), y)
    return g.reshape(y, e, n_st * n_seqs)


def _gated_attn(g: GraphBuilder, inp: dict[str, Tensor], pos: Tensor, il: int, cur: Tensor) -> Tensor:
    hp = g.hp
    b = f"blk.{il}."
    e, hd, n_t = hp.n_embd, hp.n_embd_head_k, g.p.n_tokens
    n_head, n_kv = hp.n_head[il], hp.n_head_kv[il]
    q_full = g.lin(g.w(b + "attn_q.weight", e, 2 * hd * n_head), cur, g.opt(b + "attn_q.bias", 2 * hd * n_head))
    k = g.lin(g.w(b + "attn_k.weight", e, hd * n_kv), cur, g.opt(b + "attn_k.bias", hd * n_kv))
    v = g.lin(g.w(b + "attn_v.weight", e, hd * n_kv), cur, g.opt(b + "attn_v.bias", hd * n_kv))
    q_full = g.reshape(q_full, 2 * hd, n_head, n_t, 1)
    q = g.view(q_full, (hd, n_head, n_t, 1), q_full.nb[1:])
    gate = g.view(q_full, (hd, n_head, n_t, 1), q_full.nb[1:], hd * 4)
    k = g.reshape(k, hd, n_kv, n_t)
    v = g.reshape(v, hd, n_kv, n_t)
    q = g.rope(g.norm_rms(q, g.w(b + "attn_q_norm.weight", hd)), pos)
    k = g.rope(g.norm_rms(k, g.w(b + "attn_k_norm.weight", hd)), pos)
    cur = g.attn(inp, il, None, None, q, k, v)
    gate = g.unary(g.cont(gate, hd * n_head, n_t))  # sigmoid
    cur = g.mul(cur, gate)
    return g.mul_mat(g.w(b + "attn_output.weight", hd * n_head, e), cur)


def _moe(g: GraphBuilder, il: int, cur: Tensor) -> Tensor:
    hp = g.hp
    b = f"blk.{il}."
    w_scale = float(str(g.spec.metadata.get(f"{g.spec.architecture}.expert_weights_scale", 0.0) or 0.0))
    out = g.moe_ffn(il, cur, hp.n_ff_exp, w_scale=w_scale not in (0.0, 1.0))
    if b + "ffn_up_shexp.weight" not in g.names:
        return out
    n_sh = hp.n_ff_shexp or hp.n_ff[il]
    shared = g.ffn_swiglu(il, cur, n_sh, "_shexp")
    shared_gate = g.unary(g.mul_mat(g.w(b + "ffn_gate_inp_shexp.weight", hp.n_embd), cur))  # sigmoid
    return g.add(out, g.mul(shared, shared_gate))


def build_qwen3next(g: GraphBuilder) -> None:
    """Qwen3-Next: gated delta net and gated attention layers, MoE with a gated shared expert."""
    hp = g.hp
    e = hp.n_embd
    inp_l = g.inp_embd()
    rs = g.rs_inp()
    inp = g.attn_inp_kv()
    g.attn_rot(inp)
    pos = g.inp_pos()
    out_ids = g.inp_out_ids()
    for il in range(g.n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        inp_sa = inp_l
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        g.expand(cur)
        recurrent = bool(hp.recurrent) and hp.recurrent[il]
        cur = _gdn_layer(g, rs, il, cur) if recurrent else _gated_attn(g, inp, pos, il, cur)
        cur = g.add(cur, inp_sa)
        residual = cur
        cur = g.norm_rms(cur, g.w(b + "post_attention_norm.weight", e))
        cur = _moe(g, il, cur)
        inp_l = g.add(cur, residual)
    cur = g.norm_rms(inp_l, g.w("output_norm.weight", e))
    cur.flags |= FLAG_OUTPUT  # t_h_nextn
    cur = g.get_rows(cur, out_ids)
    cur.flags |= FLAG_OUTPUT  # t_embd
    logits = g.mul_mat(g.w("output.weight", e, hp.n_vocab), cur)
    logits.flags |= FLAG_OUTPUT
    g.expand(logits)
