"""Graph builders of the DeepSeek-style MoE transformers: glm4moe and deepseek2 (src/models/<arch>.cpp).

Both run dense FFNs on their first ``leading_dense_block_count`` layers, then routed experts plus a
shared expert (``build_moe_ffn`` + ``build_ffn`` added together); their next-token-prediction
layers have their own graph and never enter the main one. glm4moe attends as llama does (Q/K/V
biases, optional per-head Q/K norms). deepseek2 uses multi-head latent attention with the
absorption trick (src/llama-graph.cpp ``build_attn`` for ``llm_graph_input_attn_k``): the cache
holds one K row per token (the normalised compressed KV and the roped key part, ``kv_lora_rank +
n_rot`` wide, no V cache), Q's no-RoPE part is projected into the compressed space by ``attn_k_b``,
V is a view of the K cache's first ``kv_lora_rank`` values, and ``attn_v_b`` decompresses the
attention output per head.
"""

from __future__ import annotations

from dataclasses import dataclass

from servefit.ggml_alloc import Tensor
from servefit.ggml_blocks import GraphBuilder
from servefit.ggml_dense import build_decoder
from servefit.ggml_ops import type_block

__all__ = ["build_deepseek2", "build_glm4moe", "mla_supported"]


def _meta_float(g: GraphBuilder, key: str, default: float = 0.0) -> float:
    value = g.spec.metadata.get(f"{g.spec.architecture}.{key}", default)
    try:
        return float(str(value))
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class _Router:
    """The router settings ``load_arch_hparams`` reads."""

    gating: str
    norm_w: bool
    w_scale: bool
    groups: tuple[int, int]


def _router(g: GraphBuilder) -> _Router:
    meta, arch = g.spec.metadata, g.spec.architecture
    if "predicted" in meta and f"{arch}.expert_gating_func" not in meta:
        # a spec predicted from config.json carries no GGUF metadata: a router bias (DeepSeek V3's
        # e_score_correction_bias, GLM-4.5's) comes with the converter's sigmoid gating, normalised and
        # scaled top-k weights; the expert groups (``n_group``) are not in the spec and stay off
        biased = any(n.endswith("exp_probs_b.bias") for n in g.names)
        return _Router("sigmoid" if biased else "softmax", biased, biased, (0, 0))
    gating_func = int(_meta_float(g, "expert_gating_func"))
    if gating_func == 0:  # LLAMA_EXPERT_GATING_FUNC_TYPE_NONE: glm4moe defaults to sigmoid, deepseek2 to softmax
        gating_func = 2 if arch == "glm4moe" else 1
    return _Router(
        gating={1: "softmax", 2: "sigmoid", 3: "softmax_weight"}.get(gating_func, "softmax"),
        norm_w=bool(meta.get(f"{arch}.expert_weights_norm", False)),
        w_scale=_meta_float(g, "expert_weights_scale") not in (0.0, 1.0),
        groups=(int(_meta_float(g, "expert_group_count")), int(_meta_float(g, "expert_group_used_count"))),
    )


def _ffn(g: GraphBuilder, il: int, cur: Tensor, router: _Router) -> Tensor:
    hp = g.hp
    if il < hp.n_layer_dense_lead:
        return g.ffn_swiglu(il, cur, hp.n_ff[il])
    routed = g.moe_ffn(
        il,
        cur,
        hp.n_ff_exp,
        gating=router.gating,
        norm_w=router.norm_w,
        w_scale=router.w_scale,
        probs_bias=f"blk.{il}.exp_probs_b.bias" in g.names,
        groups=router.groups,
    )
    shared = g.ffn_swiglu(il, cur, hp.n_ff_shexp, "_shexp")
    return g.add(routed, shared)


def build_glm4moe(g: GraphBuilder) -> None:
    """GLM-4.5 / 4.6: llama-like attention with biases, post-attention norm, dense lead layers then MoE."""
    router = _router(g)
    build_decoder(g, lambda il, cur: _ffn(g, il, cur, router), ffn_norm="post_attention_norm", out_bias=False)


def mla_supported(g_names: frozenset[str]) -> bool:
    """deepseek2 files this module rebuilds: MLA with split ``attn_k_b`` / ``attn_v_b``, separate gate/up experts."""
    return "blk.0.attn_k_b.weight" in g_names and not any(n.endswith("ffn_gate_up_exps.weight") for n in g_names)


def _attn_mla(
    g: GraphBuilder, inp: dict[str, Tensor], il: int, q: Tensor, k: Tensor, v: Tensor, wv_b: Tensor, wo: Tensor
) -> Tensor:
    """``build_attn`` with ``llm_graph_input_attn_k``: K-only cache, V a view of K, ``v_mla`` decompression."""
    p = g.p
    g.expand(q)
    g.expand(v)
    g.expand(k)
    n_t = p.n_tokens
    n_k = k.ne[0] * k.ne[1]
    cache = g.weight(p.type_k, n_k, p.n_kv, p.n_stream, name=f"cache_k_l{il}")
    cells = p.n_kv
    k_flat = g.view(k, (n_k, n_t), (k.nb[2],))
    dst = g.reshape(cache, n_k, cells * p.n_stream) if p.n_stream > 1 else cache
    g.expand(g.set_rows(dst, k_flat, inp["k_idxs"]))
    blck, size = type_block(p.type_k)

    def row(n: int) -> int:
        return n // blck * size

    kk = g.view(cache, (k.ne[0], k.ne[1], cells, p.n_stream), (row(k.ne[0]), row(n_k), row(n_k * cells)))
    vv = g.view(kk, (v.ne[0], kk.ne[1], kk.ne[2], kk.ne[3]), kk.nb[1:])
    ns = p.n_stream
    qv = g.view(q, (q.ne[0], q.ne[1], q.ne[2] // ns, ns), (q.nb[1], q.nb[2], q.nb[2] * (q.ne[2] // ns)))
    qv = g.permute(qv, 0, 2, 1, 3)
    kp = g.permute(kk, 0, 2, 1, 3)
    vp = g.permute(vv, 0, 2, 1, 3)
    if p.flash_attn:
        cur = g.flash_attn_ext(qv, kp, vp, inp["mask"])
        cur = g.permute(cur, 0, 2, 1, 3)
        cur = g.mul_mat(wv_b, cur)
        cur = g.cont(g.permute(cur, 0, 2, 1, 3))
        cur = g.reshape(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
    else:
        kq = g.soft_max(g.mul_mat(kp, qv), inp["mask"])
        vt = g.cont(g.transpose(vp))
        kqv = g.mul_mat(wv_b, g.mul_mat(vt, kq))
        cur = g.permute(kqv, 0, 2, 1, 3)
        cur = g.cont(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
    g.expand(cur)
    return g.mul_mat(wo, cur)


def build_deepseek2(g: GraphBuilder) -> None:
    """DeepSeek V2/V3/R1, Kimi K2: MLA attention (absorbed), dense lead layers, then routed + shared experts."""
    hp = g.hp
    e, n_t = hp.n_embd, g.p.n_tokens
    kv_lora = hp.kv_lora_rank
    n_rot = hp.n_embd_head_k - kv_lora
    hd_k, hd_v = hp.n_embd_head_k_mla, hp.n_embd_head_v_mla
    nope = hd_k - n_rot
    q_a = next((t.shape for t in g.spec.tensors if t.name == "blk.0.attn_q_a.weight"), None)
    q_lora = q_a[1] if q_a is not None else 0  # attention.q_lora_rank, as the tensor has it
    router = _router(g)
    inp_l = g.inp_embd()
    temp = _meta_float(g, "attention.temperature_scale")
    attn_scale = g.input("f32", 1, 1, n_t, name="inp_attn_scale") if temp else None
    pos = g.inp_pos()
    inp = g.attn_inp_kv()
    out_ids = g.inp_out_ids()
    n_layer = g.n_layer
    for il in range(n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        n_head = hp.n_head[il]
        inp_sa = inp_l
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        if q_lora:
            q = g.mul_mat(g.w(b + "attn_q_a.weight", e, q_lora), cur)
            q = g.norm_rms(q, g.w(b + "attn_q_a_norm.weight", q_lora))
            q = g.mul_mat(g.w(b + "attn_q_b.weight", q_lora, n_head * hd_k), q)
        else:
            q = g.mul_mat(g.w(b + "attn_q.weight", e, n_head * hd_k), cur)
        q = g.reshape(q, hd_k, n_head, n_t)
        kv_pe = g.mul_mat(g.w(b + "attn_kv_a_mqa.weight", e, kv_lora + n_rot), cur)
        kv_row = kv_pe.nb[1]
        kv_cmpr = g.view(kv_pe, (kv_lora, n_t), (kv_row,))
        k_pe = g.view(kv_pe, (n_rot, 1, n_t), (kv_row, kv_row), kv_lora * 4)
        k_pe = g.rope(k_pe, pos)
        kv_cmpr = g.norm_rms(kv_cmpr, g.w(b + "attn_kv_a_norm.weight", kv_lora))
        q_nope = g.view(q, (nope, n_head, n_t), (q.nb[1], q.nb[2]))
        q_pe = g.view(q, (n_rot, n_head, n_t), (q.nb[1], q.nb[2]), nope * 4)
        q_pe = g.rope(q_pe, pos)
        q_abs = g.mul_mat(g.w(b + "attn_k_b.weight", nope, kv_lora, n_head), g.permute(q_nope, 0, 2, 1, 3))
        q_cur = g.concat(g.permute(q_abs, 0, 2, 1, 3), q_pe, 0)
        kv_cmpr = g.reshape(kv_cmpr, kv_lora, 1, n_t)
        k_cur = g.concat(kv_cmpr, k_pe, 0)
        if attn_scale is not None:
            q_cur = g.mul(q_cur, attn_scale)
        wv_b = g.w(b + "attn_v_b.weight", kv_lora, hd_v, n_head)
        wo = g.w(b + "attn_output.weight", n_head * hd_v, e)
        cur = _attn_mla(g, inp, il, q_cur, k_cur, kv_cmpr, wv_b, wo)
        if il == n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            inp_sa = g.get_rows(inp_sa, out_ids)
        ffn_inp = g.add(cur, inp_sa)
        cur = g.norm_rms(ffn_inp, g.w(b + "ffn_norm.weight", e))
        cur = _ffn(g, il, cur, router)
        inp_l = g.add(cur, ffn_inp)
    g.output(inp_l)
