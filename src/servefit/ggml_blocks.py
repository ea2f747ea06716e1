"""The building blocks of llama.cpp's compute graphs (src/llama-graph.cpp), restated over ``servefit.ggml_ops``.

``GraphBuilder`` mirrors ``llm_graph_context``: graph inputs (``build_inp_embd``, ``build_inp_pos``,
``build_inp_out_ids``, ``build_attn_inp_kv``, ``build_rs_inp``), ``build_norm``, ``build_qkv``,
``build_attn`` / ``build_attn_mha`` against the KV cache (``llama_kv_cache::cpy_k``, ``cpy_v``,
``get_k``, ``get_v``; Hadamard rotations of a quantized cache), ``build_ffn``, ``build_moe_ffn``,
``build_rs`` and the Mamba-2 mixer (src/models/mamba-base.cpp), each calling
``ggml_build_forward_expand`` where llama.cpp does, so that nodes come out in llama.cpp's order.
Weights and caches are external tensors (their sizes never count); only shapes are tracked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from servefit.ggml_alloc import FLAG_OUTPUT, Graph, Tensor
from servefit.ggml_ops import Ops, type_block
from servefit.model import ModelSpec

__all__ = ["GraphBuilder", "GraphParams"]


@dataclass(frozen=True, slots=True)
class GraphParams:
    """What shapes the reserved graph: the ubatch and the memory the graph runs against."""

    n_tokens: int  # tokens of the ubatch (a multiple of n_seqs)
    n_seqs: int  # sequences in the ubatch
    n_outputs: int
    n_kv: int  # cells of one stream of the full-attention cache
    n_kv_swa: int  # cells of one stream of the sliding-window cache
    n_stream: int  # KV streams: n_seq, or 1 with a unified cache
    n_rs: int  # recurrent-state slots (n_seq)
    flash_attn: bool
    type_k: str
    type_v: str


class GraphBuilder(Ops):
    """The parts of ``llm_graph_context`` the supported architectures use."""

    def __init__(self, spec: ModelSpec, p: GraphParams) -> None:
        self.spec = spec
        self.hp = spec.hparams
        self.p = p
        self.gf = Graph()
        self.names = frozenset(t.name for t in spec.tensors)
        self.n_layer = self.hp.n_layer - self.hp.n_nextn_layer  # next-n (MTP) layers are not in the graph

    # weights -----------------------------------------------------------------------------
    def w(self, name: str, *ne: int) -> Tensor:
        return self.weight("f32", *ne, name=name)

    def opt(self, name: str, *ne: int) -> Tensor | None:
        return self.w(name, *ne) if name in self.names else None

    def expand(self, t: Tensor) -> None:
        self.gf.expand(t)

    # inputs ------------------------------------------------------------------------------
    def inp_embd(self) -> Tensor:
        n_t = self.p.n_tokens
        e = self.hp.n_embd
        tokens = self.input("i32", n_t, name="inp_tokens")
        embd = self.input("f32", e, n_t, name="inp_embd")
        cur = self.get_rows(self.w("token_embd.weight", e, self.hp.n_vocab), tokens)
        self.expand(cur)  # ggml_build_forward_select: both paths enter the graph
        self.expand(embd)
        return cur

    def inp_pos(self) -> Tensor:
        return self.input("i32", self.p.n_tokens, name="inp_pos")

    def inp_out_ids(self) -> Tensor:
        return self.input("i32", self.p.n_outputs, name="out_ids")

    def attn_inp_kv(self, swa: bool = False) -> dict[str, Tensor]:
        p = self.p
        n_kv = p.n_kv_swa if swa else p.n_kv
        v_trans = not p.flash_attn
        v_width = self._v_width_max()
        inp = {
            "k_idxs": self.input("i64", p.n_tokens, name="attn_inp_k_idxs"),
            "v_idxs": self.input("i64", p.n_tokens * (v_width if v_trans else 1), name="attn_inp_v_idxs"),
            "mask": self.input(
                "f16" if p.flash_attn else "f32", n_kv, p.n_tokens // p.n_stream, 1, p.n_stream, name="attn_inp_kq_mask"
            ),
        }
        return inp

    def attn_rot(self, inp: dict[str, Tensor]) -> None:
        """``build_input_k_rot`` / ``build_input_v_rot``: Hadamard rotations for a quantized cache."""
        hd_k, hd_v = self.hp.n_embd_head_k, self.hp.n_embd_head_v
        if _quantized(self.p.type_k) and hd_k % 64 == 0:
            n = 64
            while hd_k % (n * 2) == 0:
                n *= 2
            inp["k_rot"] = self.input("f32", n, n, name="attn_inp_k_rot")
        if _quantized(self.p.type_v) and hd_v % 64 == 0:
            inp["v_rot"] = self.input("f32", 64, 64, name="attn_inp_v_rot")

    def _v_width_max(self) -> int:
        hp = self.hp
        return max((hp.n_head_kv[i] * hp.n_embd_head_v for i in range(self.n_layer) if hp.n_head_kv[i]), default=0)

    # blocks ------------------------------------------------------------------------------
    def norm_rms(self, cur: Tensor, w: Tensor | None) -> Tensor:
        cur = self.rms_norm(cur)
        return self.mul(cur, w) if w is not None else cur

    def lin(self, w: Tensor, cur: Tensor, b: Tensor | None = None) -> Tensor:
        cur = self.mul_mat(w, cur)
        return self.add(cur, b) if b is not None else cur

    def qkv(self, il: int, cur: Tensor, hd: int, n_head: int, n_head_kv: int) -> tuple[Tensor, Tensor, Tensor]:
        """``build_qkv``: three projections (optional biases), or one fused ``attn_qkv`` viewed three ways."""
        e = self.hp.n_embd
        b = f"blk.{il}."
        n_t = self.p.n_tokens
        if b + "attn_qkv.weight" in self.names:
            n_q, n_kv = hd * n_head, hd * n_head_kv
            fused = self.lin(
                self.w(b + "attn_qkv.weight", e, n_q + 2 * n_kv), cur, self.opt(b + "attn_qkv.bias", n_q + 2 * n_kv)
            )
            row = fused.nb[1]
            return (
                self.view(fused, (hd, n_head, n_t), (hd * 4, row)),
                self.view(fused, (hd, n_head_kv, n_t), (hd * 4, row), n_q * 4),
                self.view(fused, (hd, n_head_kv, n_t), (hd * 4, row), (n_q + n_kv) * 4),
            )
        q = self.lin(self.w(b + "attn_q.weight", e, hd * n_head), cur, self.opt(b + "attn_q.bias", hd * n_head))
        k = self.lin(self.w(b + "attn_k.weight", e, hd * n_head_kv), cur, self.opt(b + "attn_k.bias", hd * n_head_kv))
        v = self.lin(self.w(b + "attn_v.weight", e, hd * n_head_kv), cur, self.opt(b + "attn_v.bias", hd * n_head_kv))
        return (
            self.reshape(q, hd, n_head, n_t),
            self.reshape(k, hd, n_head_kv, n_t),
            self.reshape(v, hd, n_head_kv, n_t),
        )

    def hadamard(self, cur: Tensor, rot: Tensor) -> Tensor:
        n = rot.ne[0]
        count = cur.ne[0] * cur.ne[1] * cur.ne[2] * cur.ne[3]
        res = self.reshape(cur, n, count // n) if self.is_contiguous(cur) else self.cont(cur, n, count // n)
        res = self.mul_mat(rot, res)
        return self.reshape(res, *cur.ne)

    def kv_cache(self, il: int, swa: bool) -> tuple[Tensor, Tensor]:
        hp, p = self.hp, self.p
        cells = p.n_kv_swa if swa else p.n_kv
        n_k = hp.n_head_kv[il] * hp.n_embd_head_k
        n_v = hp.n_head_kv[il] * hp.n_embd_head_v if p.flash_attn else self._v_width_max()
        k = self.weight(p.type_k, n_k, cells, p.n_stream, name=f"cache_k_l{il}")
        v = self.weight(p.type_v, n_v, cells, p.n_stream, name=f"cache_v_l{il}")
        return k, v

    def attn(
        self,
        inp: dict[str, Tensor],
        il: int,
        wo: Tensor | None,
        wo_b: Tensor | None,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        swa: bool = False,
        sinks: Tensor | None = None,
        iswa: bool = False,
    ) -> Tensor:
        """``build_attn`` with a KV cache (``llm_graph_input_attn_kv``, ``_kv_iswa`` when ``iswa``)."""
        hp, p = self.hp, self.p
        k_rot, v_rot = inp.get("k_rot"), inp.get("v_rot")
        if k_rot is not None:
            q = self.hadamard(q, k_rot)
            k = self.hadamard(k, k_rot)
        if v_rot is not None:
            v = self.hadamard(v, v_rot)
        self.expand(q)
        for t in (k, v) if iswa else (v, k):
            self.expand(t)
        k_cache, v_cache = self.kv_cache(il, swa)
        n_t = p.n_tokens
        hd_k, hd_v, n_kv_h = hp.n_embd_head_k, hp.n_embd_head_v, hp.n_head_kv[il]
        cells = k_cache.ne[1]
        # cpy_k
        k_flat = self.view(k, (hd_k * n_kv_h, n_t), (k.nb[2],))
        k_dst = self.reshape(k_cache, k_cache.ne[0], cells * p.n_stream) if p.n_stream > 1 else k_cache
        self.expand(self.set_rows(k_dst, k_flat, inp["k_idxs"]))
        # cpy_v
        if p.flash_attn:
            v_flat = self.view(v, (hd_v * n_kv_h, n_t), (v.nb[2],))
            v_dst = self.reshape(v_cache, v_cache.ne[0], cells * p.n_stream) if p.n_stream > 1 else v_cache
            self.expand(self.set_rows(v_dst, v_flat, inp["v_idxs"]))
        else:
            n_gqa = hd_v * n_kv_h
            v2 = self.reshape(v, n_gqa, n_t) if self.is_contiguous(v) else self.cont(v, n_gqa, n_t)
            if n_gqa < v_cache.ne[0]:
                v2 = self.tensor(v2.type, v_cache.ne[0], n_t, op="PAD", src=(v2,))
            v_view = self.reshape(v_cache, 1, v_cache.ne[0] * cells * p.n_stream)
            v2 = self.reshape(v2, 1, v2.ne[0] * v2.ne[1])
            self.expand(self.set_rows(v_view, v2, inp["v_idxs"]))
        # get_k / get_v
        tk, tv = _row(p.type_k), _row(p.type_v)
        kk = self.view(
            k_cache,
            (hd_k, n_kv_h, cells, p.n_stream),
            (tk(hd_k), tk(k_cache.ne[0]), tk(k_cache.ne[0] * cells)),
        )
        if p.flash_attn:
            vv = self.view(
                v_cache,
                (hd_v, n_kv_h, cells, p.n_stream),
                (tv(hd_v), tv(v_cache.ne[0]), tv(v_cache.ne[0] * cells)),
            )
        else:
            vv = self.view(
                v_cache,
                (cells, n_kv_h, hd_v, p.n_stream),
                (tv(cells * hd_v), tv(cells), tv(cells * v_cache.ne[0])),
            )
        cur = self.attn_mha(q, kk, vv, inp["mask"], sinks)
        if v_rot is not None:
            cur = self.hadamard(cur, v_rot)
        return cur if wo is None else self.lin(wo, cur, wo_b)

    def attn_mha(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, sinks: Tensor | None) -> Tensor:
        ns = k.ne[3]
        q = self.view(q, (q.ne[0], q.ne[1], q.ne[2] // ns, ns), (q.nb[1], q.nb[2], q.nb[2] * (q.ne[2] // ns)))
        q = self.permute(q, 0, 2, 1, 3)
        k = self.permute(k, 0, 2, 1, 3)
        v = self.permute(v, 0, 2, 1, 3)
        if self.p.flash_attn:
            cur = self.flash_attn_ext(q, k, v, mask, sinks)
            cur = self.reshape(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
        else:
            kq = self.mul_mat(k, q)
            kq = self.soft_max(kq, mask, sinks)
            kqv = self.mul_mat(v, kq)
            cur = self.permute(kqv, 0, 2, 1, 3)
            cur = self.cont(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
        self.expand(cur)
        return cur

    def ffn_swiglu(self, il: int, cur: Tensor, n_ff: int, suffix: str = "") -> Tensor:
        e, b = self.hp.n_embd, f"blk.{il}."
        up = self.mul_mat(self.w(b + f"ffn_up{suffix}.weight", e, n_ff), cur)
        gate = self.mul_mat(self.w(b + f"ffn_gate{suffix}.weight", e, n_ff), cur)
        cur = self.glu_split(gate, up)
        return self.mul_mat(self.w(b + f"ffn_down{suffix}.weight", n_ff, e), cur)

    def moe_ffn(
        self,
        il: int,
        cur: Tensor,
        n_ff: int,
        *,
        gating: str = "softmax",
        norm_w: bool = True,
        w_scale: bool = False,
        probs_bias: bool = False,
        gate: bool = True,
        biases: bool = False,
        act: str = "glu",
        probs_in: Tensor | None = None,
        groups: tuple[int, int] = (1, 0),
    ) -> Tensor:
        """``build_moe_ffn``: router, top-k experts, ``mul_mat_id`` per projection, weighted sum of the experts.

        ``groups``: (expert groups, groups kept); with several groups the experts are picked among
        the best groups only (each scored by its two best experts).
        """
        hp = self.hp
        e, n_t, b = cur.ne[0], cur.ne[1], f"blk.{il}."
        n_exp, k = hp.n_expert, hp.n_expert_used
        logits = probs_in if probs_in is not None else self.mul_mat(self.w(b + "ffn_gate_inp.weight", e, n_exp), cur)
        if biases:
            logits = self.add(logits, self.w(b + "ffn_gate_inp.bias", n_exp))
        if gating == "softmax":
            probs = self.soft_max(logits)
        elif gating == "sigmoid":
            probs = self.unary(logits)
        else:  # softmax_weight: the softmax comes after the selection
            probs = logits
        sel_probs = self.add(probs, self.w(b + "exp_probs_b.bias", n_exp)) if probs_bias else probs
        if groups[0] > 1:
            sel_probs = self._group_select(sel_probs, groups[0], groups[1])
        selected = self.argsort(sel_probs)
        selected = self.view(selected, (k, *selected.ne[1:]), selected.nb[1:])
        probs = self.reshape(probs, 1, n_exp, n_t)
        weights = self.get_rows(probs, selected)
        if gating == "softmax_weight":
            weights = self.reshape(weights, k, n_t)
            weights = self.soft_max(weights)
            weights = self.reshape(weights, 1, k, n_t)
        if norm_w:
            weights = self.reshape(weights, k, n_t)
            wsum = self.clamp(self.sum_rows(weights))
            weights = self.div(weights, wsum)
            weights = self.reshape(weights, 1, k, n_t)
        if w_scale:
            weights = self.scale(weights)
        self.expand(weights)
        cur = self.reshape(cur, e, 1, n_t)
        up = self.mul_mat_id(self.w(b + "ffn_up_exps.weight", e, n_ff, n_exp), cur, selected)
        if biases:
            up = self.add_id(up, self.w(b + "ffn_up_exps.bias", n_ff, n_exp), selected)
        if gate:
            g = self.mul_mat_id(self.w(b + "ffn_gate_exps.weight", e, n_ff, n_exp), cur, selected)
            if biases:
                g = self.add_id(g, self.w(b + "ffn_gate_exps.bias", n_ff, n_exp), selected)
            cur = self.glu_split(g, up)
        elif act == "relu_sqr":
            cur = self.sqr(self.unary(up))
        else:
            cur = self.unary(up)
        experts = self.mul_mat_id(self.w(b + "ffn_down_exps.weight", n_ff, e, n_exp), cur, selected)
        if biases:
            experts = self.add_id(experts, self.w(b + "ffn_down_exps.bias", e, n_exp), selected)
        experts = self.mul(experts, weights)
        self.expand(experts)
        views = []
        for i in range(k):
            v = self.view(experts, (e, n_t), (experts.nb[2],), i * experts.nb[1])
            self.expand(v)
            views.append(v)
        out = views[0]
        for v in views[1:]:
            out = self.add(out, v)
            self.expand(out)
        if k == 1:
            out = self.cont(out)
        return out

    def _group_select(self, sel: Tensor, n_groups: int, n_used: int) -> Tensor:
        """The expert-group stage of ``build_moe_ffn``: experts outside the best groups get -inf."""
        n_exp, n_t = sel.ne[0], sel.ne[1]
        per = n_exp // n_groups
        grouped = self.reshape(sel, per, n_groups, n_t)
        best2 = self.argsort(grouped)
        best2 = self.view(best2, (2, *best2.ne[1:]), best2.nb[1:])
        scores = self.get_rows(self.reshape(grouped, 1, per, n_groups, n_t), best2)
        scores = self.sum_rows(self.reshape(scores, scores.ne[1], scores.ne[2], scores.ne[3]))
        scores = self.reshape(scores, scores.ne[1], scores.ne[2])
        kept = self.argsort(scores)
        kept = self.view(kept, (n_used, *kept.ne[1:]), kept.nb[1:])
        rows = self.get_rows(grouped, kept)
        filled = self.set_rows(self._dup("FILL", grouped), rows, kept)
        return self.reshape(filled, n_exp, n_t)

    # recurrent state ----------------------------------------------------------------------
    def rs_inp(self) -> dict[str, Tensor]:
        """``build_rs_inp``: the state-copy indices, viewed as the ubatch's sequences and the rest."""
        n_rs, n_seqs = self.p.n_rs, self.p.n_seqs
        s_copy = self.input("i32", n_rs, name="rs_s_copy")
        return {
            "main": self.view(s_copy, (n_seqs,), ()),
            "extra": self.view(s_copy, (n_rs - n_seqs,), (), n_seqs * 4),
        }

    def rs(
        self, inp: dict[str, Tensor], s: Tensor, size: int, rows: Callable[[Tensor, Tensor], Tensor] | None = None
    ) -> Tensor:
        """``build_rs``: zero one state, gather the ubatch's states, copy the others back."""
        p = self.p
        states = self.reshape(s, size, s.ne[1])
        zero = self.view(states, (size,), ())
        self.expand(self.view_tensor(zero, "SCALE"))
        out = rows(states, inp["main"]) if rows is not None else self.get_rows(states, inp["main"])
        self.expand(out)
        extra = self.get_rows(states, inp["extra"])
        self.expand(self.cpy(extra, self.view(s, (size, p.n_rs - p.n_seqs), (s.nb[1],), p.n_seqs * s.nb[1])))
        return out

    def mamba2(self, inp: dict[str, Tensor], il: int, cur: Tensor) -> Tensor:
        """``build_mamba2_layer``: conv state, in-projection split, 1D conv, SSM scan, gated RMS norm."""
        hp, p = self.hp, self.p
        b = f"blk.{il}."
        d_conv, d_inner, d_state = hp.ssm_d_conv, hp.ssm_d_inner, hp.ssm_d_state
        n_head, n_group = hp.ssm_dt_rank, max(1, hp.ssm_n_group)
        head_dim = d_inner // n_head
        n_seqs = p.n_seqs
        n_st = p.n_tokens // n_seqs
        ch = d_inner + 2 * n_group * d_state
        d_in_proj = 2 * d_inner + 2 * n_group * d_state + n_head
        n_embd_r = (d_conv - 1) * ch
        n_embd_s = d_state * d_inner
        conv_all = self.weight("f32", n_embd_r, p.n_rs, name=f"cache_r_l{il}")
        ssm_all = self.weight("f32", n_embd_s, p.n_rs, name=f"cache_s_l{il}")
        conv = self.rs(inp, conv_all, n_embd_r)
        conv = self.reshape(conv, d_conv - 1, ch, n_seqs)
        zx = self.mul_mat(self.w(b + "ssm_in.weight", hp.n_embd, d_in_proj), cur)
        zx = self.reshape(zx, d_in_proj, n_st, n_seqs)
        z = self.view(zx, (head_dim, n_head, n_st, n_seqs), (head_dim * 4, zx.nb[1], zx.nb[2]))
        xbc = self.view(zx, (ch, n_st, n_seqs), (zx.nb[1], zx.nb[2]), d_inner * 4)
        dt = self.view(zx, (n_head, n_st, n_seqs), (zx.nb[1], zx.nb[2]), (2 * d_inner + 2 * n_group * d_state) * 4)
        conv_x = self.concat(conv, self.transpose(xbc), 0)
        last = self.view(conv_x, (d_conv - 1, ch, n_seqs), (conv_x.nb[1], conv_x.nb[2]), n_st * conv_x.nb[0])
        self.expand(self.cpy(last, self.view(conv_all, (n_embd_r, n_seqs), (conv_all.nb[1],))))
        xbc = self.tensor(
            "f32", ch, n_st, n_seqs, op="SSM_CONV", src=(conv_x, self.w(b + "ssm_conv1d.weight", d_conv, ch))
        )
        xbc = self.unary(self.add(xbc, self.w(b + "ssm_conv1d.bias", ch)))
        x = self.view(xbc, (head_dim, n_head, n_st, n_seqs), (head_dim * 4, xbc.nb[1], xbc.nb[2]))
        bb = self.view(xbc, (d_state, n_group, n_st, n_seqs), (d_state * 4, xbc.nb[1], xbc.nb[2]), d_inner * 4)
        cc = self.view(
            xbc,
            (d_state, n_group, n_st, n_seqs),
            (d_state * 4, xbc.nb[1], xbc.nb[2]),
            (d_inner + n_group * d_state) * 4,
        )
        dt = self.add(self.cont(dt), self.w(b + "ssm_dt.bias", n_head))
        a = self.w(b + "ssm_a", 1, n_head)

        def scan(states: Tensor, ids: Tensor) -> Tensor:
            ssm = self.reshape(states, d_state, head_dim, n_head, states.ne[1])
            n_out = head_dim * n_head * n_st * n_seqs + d_state * head_dim * n_head * ids.ne[0]
            return self.tensor("f32", n_out, op="SSM_SCAN", src=(ssm, x, dt, a, bb, cc, ids))

        y_ssm = self.rs(inp, ssm_all, n_embd_s, scan)
        x_bytes = head_dim * n_head * n_st * n_seqs * 4
        self.expand(
            self.cpy(
                self.view(y_ssm, (n_embd_s, n_seqs, 1), (n_embd_s * 4, n_embd_s * 4 * n_seqs), x_bytes),
                self.view(ssm_all, (n_embd_s, n_seqs, 1), (ssm_all.nb[1], ssm_all.nb[1] * p.n_rs)),
            )
        )
        xb1 = head_dim * 4
        y = self.view(y_ssm, (head_dim, n_head, n_st, n_seqs), (xb1, n_head * xb1, n_st * n_head * xb1))
        y = self.add(y, self.mul(x, self.w(b + "ssm_d", 1, n_head)))
        y = self.glu_split(self.cont(z), y)
        norm = self.opt(b + "ssm_norm.weight", d_inner // n_group, n_group)
        if norm is not None:
            y = self.reshape(y, d_inner // n_group, n_group, n_st, n_seqs)
            y = self.norm_rms(y, norm)
        y = self.reshape(y, d_inner, n_st * n_seqs)
        return self.mul_mat(self.w(b + "ssm_out.weight", d_inner, hp.n_embd), y)

    def output(self, cur: Tensor, softcap: bool = False) -> Tensor:
        e = self.hp.n_embd
        cur = self.norm_rms(cur, self.w("output_norm.weight", e))
        cur.flags |= FLAG_OUTPUT  # t_embd
        logits = self.lin(self.w("output.weight", e, self.hp.n_vocab), cur, self.opt("output.bias", self.hp.n_vocab))
        if softcap:
            logits = self.scale(self.unary(self.scale(logits)))
        logits.flags |= FLAG_OUTPUT  # t_logits
        self.expand(logits)
        return logits


def _quantized(type_name: str) -> bool:
    return type_name.lower() not in {"f32", "f16", "bf16"}


def _row(type_name: str) -> Callable[[int], int]:
    blck, size = type_block(type_name)
    return lambda n: n // blck * size
