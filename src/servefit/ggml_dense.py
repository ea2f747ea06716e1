"""Graph builders of the dense transformers beside llama: qwen2, qwen3, mistral3 (src/models/<arch>.cpp).

qwen2 is llama's graph with Q/K/V biases (``build_qkv`` adds them); qwen3 normalises Q and K per
head before RoPE; mistral3 multiplies Q by the llama 4 attention temperature (an input of
``1 x 1 x n_tokens``) when the model sets ``attention.temperature_scale``; phi3 projects Q, K and V
with one fused matrix, scales Q after RoPE, and runs a fused gate/up FFN (``ggml_swiglu`` over the
two halves of ``ffn_up``'s output).
"""

from __future__ import annotations

from servefit.ggml_blocks import GraphBuilder

__all__ = ["build_dense", "build_phi3"]


def build_dense(g: GraphBuilder) -> None:
    """llama-style decoder (qwen2, qwen3, mistral3): pre-norm attention and SwiGLU FFN per layer."""
    hp, arch = g.hp, g.spec.architecture
    e, hd = hp.n_embd, hp.n_embd_head_k
    qk_norm = arch == "qwen3"
    temp = arch == "mistral3" and float(str(g.spec.metadata.get(f"{arch}.attention.temperature_scale", 0.0) or 0.0))
    inp_l = g.inp_embd()
    pos = g.inp_pos()
    attn_scale = g.input("f32", 1, 1, g.p.n_tokens, name="inp_attn_scale") if temp else None
    inp = g.attn_inp_kv()
    g.attn_rot(inp)
    out_ids = g.inp_out_ids()
    n_layer = g.n_layer
    for il in range(n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        inp_sa = inp_l
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        q, k, v = g.qkv(il, cur, hd, hp.n_head[il], hp.n_head_kv[il])
        if qk_norm:
            q = g.rope(g.norm_rms(q, g.w(b + "attn_q_norm.weight", hd)), pos)
            k = g.rope(g.norm_rms(k, g.w(b + "attn_k_norm.weight", hd)), pos)
        else:
            q = g.rope(q, pos)
            k = g.rope(k, pos)
        if attn_scale is not None:
            q = g.mul(q, attn_scale)
        wo = g.w(b + "attn_output.weight", hd * hp.n_head[il], e)
        cur = g.attn(inp, il, wo, g.opt(b + "attn_output.bias", e), q, k, v)
        if il == n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            inp_sa = g.get_rows(inp_sa, out_ids)
        ffn_inp = g.add(cur, inp_sa)
        cur = g.norm_rms(ffn_inp, g.w(b + "ffn_norm.weight", e))
        cur = g.ffn_swiglu(il, cur, hp.n_ff[il])
        inp_l = g.add(cur, ffn_inp)
    g.output(inp_l)


def build_phi3(g: GraphBuilder) -> None:
    """phi3 (Phi-3, Phi-4): fused QKV, Q scaled after RoPE, fused gate/up FFN."""
    hp = g.hp
    e, hd = hp.n_embd, hp.n_embd_head_k
    inp_l = g.inp_embd()
    pos = g.inp_pos()
    inp = g.attn_inp_kv()
    g.attn_rot(inp)
    out_ids = g.inp_out_ids()
    n_layer = g.n_layer
    for il in range(n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        residual = inp_l
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        q, k, v = g.qkv(il, cur, hd, hp.n_head[il], hp.n_head_kv[il])
        q = g.scale(g.rope(q, pos))
        k = g.rope(k, pos)
        wo = g.w(b + "attn_output.weight", hd * hp.n_head[il], e)
        cur = g.attn(inp, il, wo, g.opt(b + "attn_output.bias", e), q, k, v)
        if il == n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            residual = g.get_rows(residual, out_ids)
        cur = g.add(cur, residual)
        residual = cur
        cur = g.norm_rms(cur, g.w(b + "ffn_norm.weight", e))
        n_ff = hp.n_ff[il]
        cur = g.glu(g.mul_mat(g.w(b + "ffn_up.weight", e, 2 * n_ff), cur))
        cur = g.mul_mat(g.w(b + "ffn_down.weight", n_ff, e), cur)
        inp_l = g.add(residual, cur)
    g.output(inp_l)
