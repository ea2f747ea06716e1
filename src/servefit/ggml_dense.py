"""Graph builders of the llama-style decoders: llama, qwen2, qwen3, mistral3, phi3 (src/models/<arch>.cpp).

qwen2 is llama's graph with Q/K/V biases (``build_qkv`` adds them); qwen3 normalises Q and K per
head before RoPE; mistral3 multiplies Q by the llama 4 attention temperature (an input of
``1 x 1 x n_tokens``) when the model sets ``attention.temperature_scale``; phi3 projects Q, K and V
with one fused matrix, scales Q after RoPE, and runs a fused gate/up FFN (``ggml_swiglu`` over the
two halves of ``ffn_up``'s output).
"""

from __future__ import annotations

from collections.abc import Callable

from servefit.ggml_alloc import Tensor
from servefit.ggml_blocks import GraphBuilder

__all__ = ["build_decoder", "build_dense", "build_phi3"]


def build_decoder(
    g: GraphBuilder,
    ffn: Callable[[int, Tensor], Tensor],
    *,
    ffn_norm: str = "ffn_norm",
    temperature: bool = False,
    out_bias: bool = True,
) -> None:
    """The llama-style decoder llama, qwen2/3, mistral3, qwen3moe and glm4moe share: per layer a pre-norm
    attention (Q/K normalised per head when the file has ``attn_q_norm`` / ``attn_k_norm``, RoPE, Q times
    the temperature input with ``temperature``), the residual, a pre-norm FFN (``ffn(il, cur)``) and the
    residual again; the last layer keeps only the output rows."""
    hp = g.hp
    e, hd = hp.n_embd, hp.n_embd_head_k
    inp_l = g.inp_embd()
    pos = g.inp_pos()
    attn_scale = g.input("f32", 1, 1, g.p.n_tokens, name="inp_attn_scale") if temperature else None
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
        q_norm, k_norm = g.opt(b + "attn_q_norm.weight", hd), g.opt(b + "attn_k_norm.weight", hd)
        q = g.rope(q if q_norm is None else g.norm_rms(q, q_norm), pos)
        k = g.rope(k if k_norm is None else g.norm_rms(k, k_norm), pos)
        if attn_scale is not None:
            q = g.mul(q, attn_scale)
        wo = g.w(b + "attn_output.weight", hd * hp.n_head[il], e)
        cur = g.attn(inp, il, wo, g.opt(b + "attn_output.bias", e) if out_bias else None, q, k, v)
        if il == n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            inp_sa = g.get_rows(inp_sa, out_ids)
        ffn_inp = g.add(cur, inp_sa)
        cur = g.norm_rms(ffn_inp, g.w(b + ffn_norm + ".weight", e))
        inp_l = g.add(ffn(il, cur), ffn_inp)
    g.output(inp_l)


def build_dense(g: GraphBuilder) -> None:
    """llama-style decoder (llama, qwen2, qwen3, mistral3): pre-norm attention and SwiGLU FFN per layer."""
    arch = g.spec.architecture
    temp = arch == "mistral3" and float(str(g.spec.metadata.get(f"{arch}.attention.temperature_scale", 0.0) or 0.0))
    build_decoder(g, lambda il, cur: g.ffn_swiglu(il, cur, g.hp.n_ff[il]), temperature=bool(temp))


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
