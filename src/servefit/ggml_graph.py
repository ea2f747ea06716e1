"""llama.cpp's worst-case prompt graph, rebuilt tensor by tensor, and the CPU compute buffer it needs.

``sched_reserve`` (src/llama-context.cpp) builds the graph of one ubatch of ``n_ubatch`` tokens
(rounded up to a multiple of ``n_seq``), every token an output, against the whole KV cache
(``n_kv`` = the cells of one stream, ``n_seq`` streams unless the cache is unified), then the
one-token-per-sequence graph, then the prompt graph again; ggml's allocator keeps the largest
buffer. The builders here restate, per architecture, the graph code of src/llama-graph.cpp
(``build_inp_*``, ``build_norm``, ``build_qkv``, ``build_attn``, ``build_attn_mha``, ``build_ffn``,
``build_moe_ffn``) and src/models/*.cpp, in the same order of ``ggml_build_forward_expand`` calls,
so that ``servefit.ggml_alloc`` sees the nodes in ggml's order (qwen2, qwen3, mistral3 and phi3
in ``servefit.ggml_dense``, glm4moe and deepseek2 in ``servefit.ggml_moe``, qwen3next in
``servefit.ggml_gdn``). Architectures without a builder give None (the caller keeps its estimate).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from servefit.ggml_alloc import FLAG_OUTPUT, Graph, Program, Tensor, compile_graph
from servefit.ggml_blocks import GraphBuilder, GraphParams
from servefit.ggml_dense import build_decoder, build_dense, build_phi3
from servefit.ggml_gdn import build_qwen3next, gdn_supported
from servefit.ggml_moe import build_deepseek2, build_glm4moe, mla_supported
from servefit.model import ModelSpec

__all__ = ["GraphParams", "build_graph", "cpu_compute_bytes", "reserve_params", "supported"]

CPU_ALIGNMENT = 32  # TENSOR_ALIGNMENT: the CPU buffer type's alignment


def _qwen3moe(g: GraphBuilder) -> None:
    build_decoder(g, lambda il, cur: g.moe_ffn(il, cur, g.hp.n_ff_exp))


def _gemma3(g: GraphBuilder) -> None:
    hp = g.hp
    e, hd = hp.n_embd, hp.n_embd_head_k
    swa_layers = hp.swa_layers or (False,) * hp.n_layer
    iswa = any(swa_layers)
    inp_l = g.scale(g.inp_embd())
    pos = g.inp_pos()
    inp = g.attn_inp_kv()
    inp_swa = g.attn_inp_kv(swa=True) if iswa else inp
    g.attn_rot(inp)
    if iswa:
        g.attn_rot(inp_swa)
    out_ids = g.inp_out_ids()
    n_layer = g.n_layer
    for il in range(n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        swa = swa_layers[il]
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        q, k, v = g.qkv(il, cur, hd, hp.n_head[il], hp.n_head_kv[il])
        q = g.rope(g.norm_rms(q, g.w(b + "attn_q_norm.weight", hd)), pos)
        k = g.rope(g.norm_rms(k, g.w(b + "attn_k_norm.weight", hd)), pos)
        q = g.scale(q)
        wo = g.w(b + "attn_output.weight", hd * hp.n_head[il], e)
        cur = g.attn(inp_swa if swa else inp, il, wo, None, q, k, v, swa=swa, iswa=iswa)
        if il == n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            inp_l = g.get_rows(inp_l, out_ids)
        cur = g.norm_rms(cur, g.w(b + "post_attention_norm.weight", e))
        sa_out = g.add(cur, inp_l)
        cur = g.norm_rms(sa_out, g.w(b + "ffn_norm.weight", e))
        cur = g.ffn_swiglu(il, cur, hp.n_ff[il])
        cur = g.norm_rms(cur, g.w(b + "post_ffw_norm.weight", e))
        inp_l = g.add(cur, sa_out)
    softcap = bool(g.spec.metadata.get(f"{g.spec.architecture}.final_logit_softcapping", 0))
    g.output(inp_l, softcap=softcap)


def _gpt_oss(g: GraphBuilder) -> None:
    hp = g.hp
    e, hd = hp.n_embd, hp.n_embd_head_k
    swa_layers = hp.swa_layers or (False,) * hp.n_layer
    inp_l = g.inp_embd()
    pos = g.inp_pos()
    inp = g.attn_inp_kv()
    inp_swa = g.attn_inp_kv(swa=True)
    g.attn_rot(inp)
    g.attn_rot(inp_swa)
    out_ids = g.inp_out_ids()
    for il in range(g.n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        swa = swa_layers[il]
        inp_sa = inp_l
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        q, k, v = g.qkv(il, cur, hd, hp.n_head[il], hp.n_head_kv[il])
        q = g.rope(q, pos)
        k = g.rope(k, pos)
        wo = g.w(b + "attn_output.weight", hd * hp.n_head[il], e)
        sinks = g.w(b + "attn_sinks.weight", hp.n_head[il])
        cur = g.attn(
            inp_swa if swa else inp, il, wo, g.opt(b + "attn_output.bias", e), q, k, v, swa=swa, sinks=sinks, iswa=True
        )
        ffn_inp = g.add(cur, inp_sa)
        cur = g.norm_rms(ffn_inp, g.w(b + "post_attention_norm.weight", e))
        cur = g.moe_ffn(il, cur, hp.n_ff_exp, gating="softmax_weight", norm_w=False, biases=True)
        inp_l = g.add(cur, ffn_inp)
    inp_l.flags |= FLAG_OUTPUT  # t_h_nextn
    g.output(g.get_rows(inp_l, out_ids))


def _mamba2(g: GraphBuilder) -> None:
    hp = g.hp
    e = hp.n_embd
    inp_l = g.inp_embd()
    rs = g.rs_inp()
    out_ids = g.inp_out_ids()
    n_layer = g.n_layer
    for il in range(n_layer):
        g.gf.mark()
        cur = g.norm_rms(inp_l, g.w(f"blk.{il}.attn_norm.weight", e))
        cur = g.mamba2(rs, il, cur)
        if il == n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            inp_l = g.get_rows(inp_l, out_ids)
        inp_l = g.add(cur, inp_l)
    g.output(inp_l)


def _relu_sqr_ffn(g: GraphBuilder, cur: Tensor, up: Tensor, down: Tensor) -> Tensor:
    return g.mul_mat(down, g.sqr(g.unary(g.mul_mat(up, cur))))


def _nemotron_h_moe(g: GraphBuilder) -> None:
    hp = g.hp
    e, hd = hp.n_embd, hp.n_embd_head_k
    meta = g.spec.metadata
    arch = g.spec.architecture
    norm_w = bool(meta.get(f"{arch}.expert_weights_norm", False))
    w_scale = float(str(meta.get(f"{arch}.expert_weights_scale", 0.0) or 0.0)) not in (0.0, 1.0)
    inp_l = g.inp_embd()
    rs = g.rs_inp()
    inp = g.attn_inp_kv()
    g.attn_rot(inp)
    out_ids = g.inp_out_ids()
    for il in range(g.n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        inp_sa = inp_l
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        if hp.recurrent and hp.recurrent[il]:
            cur = g.mamba2(rs, il, cur)
        elif hp.n_ff[il] == 0:
            q, k, v = g.qkv(il, cur, hd, hp.n_head[il], hp.n_head_kv[il])
            wo = g.w(b + "attn_output.weight", hd * hp.n_head[il], e)
            cur = g.attn(inp, il, wo, g.opt(b + "attn_output.bias", e), q, k, v)
        elif b + "ffn_gate_inp.weight" not in g.names:
            cur = _relu_sqr_ffn(
                g, cur, g.w(b + "ffn_up.weight", e, hp.n_ff[il]), g.w(b + "ffn_down.weight", hp.n_ff[il], e)
            )
        else:
            latent = hp.moe_latent_size if b + "ffn_latent_down.weight" in g.names else 0
            inp_latent = g.mul_mat(g.w(b + "ffn_latent_down.weight", e, latent), cur) if latent else cur
            router = g.mul_mat(g.w(b + "ffn_gate_inp.weight", e, hp.n_expert), cur)
            moe = g.moe_ffn(
                il,
                inp_latent,
                hp.n_ff_exp,
                gating="sigmoid",
                norm_w=norm_w,
                w_scale=w_scale,
                probs_bias=b + "exp_probs_b.bias" in g.names,
                gate=False,
                act="relu_sqr",
                probs_in=router,
            )
            if latent:
                moe = g.mul_mat(g.w(b + "ffn_latent_up.weight", latent, e), moe)
            n_sh = hp.n_ff_shexp
            shexp = _relu_sqr_ffn(
                g, cur, g.w(b + "ffn_up_shexp.weight", e, n_sh), g.w(b + "ffn_down_shexp.weight", n_sh, e)
            )
            cur = g.add(moe, shexp)
        inp_l = g.add(cur, inp_sa)
    cur = g.norm_rms(inp_l, g.w("output_norm.weight", e))
    cur.flags |= FLAG_OUTPUT  # t_h_nextn
    cur = g.get_rows(cur, out_ids)
    cur.flags |= FLAG_OUTPUT  # t_embd
    logits = g.mul_mat(g.w("output.weight", e, hp.n_vocab), cur)
    logits.flags |= FLAG_OUTPUT
    g.expand(logits)


def _granitehybrid(g: GraphBuilder) -> None:
    hp = g.hp
    e, hd = hp.n_embd, hp.n_embd_head_k
    meta, arch = g.spec.metadata, g.spec.architecture

    def scale_of(key: str) -> bool:
        return float(str(meta.get(f"{arch}.{key}", 0.0) or 0.0)) != 0.0

    inp_l = g.inp_embd()
    if scale_of("embedding_scale"):
        inp_l = g.scale(inp_l)
    rs = g.rs_inp()
    inp = g.attn_inp_kv()
    g.attn_rot(inp)
    out_ids = g.inp_out_ids()
    rope = bool(meta.get(f"{arch}.rope.scaling.finetuned", True))
    pos = g.inp_pos() if rope else None
    res_scale = scale_of("residual_scale")
    n_layer = g.n_layer
    for il in range(n_layer):
        g.gf.mark()
        b = f"blk.{il}."
        inp_sa = inp_l
        cur = g.norm_rms(inp_l, g.w(b + "attn_norm.weight", e))
        if hp.recurrent and hp.recurrent[il]:
            cur = g.mamba2(rs, il, cur)
        else:
            q, k, v = g.qkv(il, cur, hd, hp.n_head[il], hp.n_head_kv[il])
            if pos is not None:
                q = g.rope(q, pos)
                k = g.rope(k, pos)
            wo = g.w(b + "attn_output.weight", hd * hp.n_head[il], e)
            cur = g.attn(inp, il, wo, g.opt(b + "attn_output.bias", e), q, k, v)
        if il == n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            inp_sa = g.get_rows(inp_sa, out_ids)
        if res_scale:
            cur = g.scale(cur)
        ffn_inp = g.add(cur, inp_sa)
        cur = g.norm_rms(ffn_inp, g.w(b + "ffn_norm.weight", e))
        if b + "ffn_gate_inp.weight" in g.names:
            moe = g.moe_ffn(il, cur, hp.n_ff_exp)
            cur = g.add(moe, g.ffn_swiglu(il, cur, hp.n_ff_shexp, "_shexp")) if hp.n_ff_shexp else moe
        else:
            cur = g.ffn_swiglu(il, cur, hp.n_ff[il])
        if res_scale:
            cur = g.scale(cur)
        inp_l = g.add(cur, ffn_inp)
    logits = g.output(inp_l)
    if scale_of("logit_scale"):
        logits.flags &= ~FLAG_OUTPUT
        scaled = g.scale(logits)
        scaled.flags |= FLAG_OUTPUT
        g.expand(scaled)


_BUILDERS: dict[str, Callable[[GraphBuilder], None]] = {
    "llama": build_dense,
    "qwen3moe": _qwen3moe,
    "gemma3": _gemma3,
    "gpt-oss": _gpt_oss,
    "mamba2": _mamba2,
    "nemotron_h_moe": _nemotron_h_moe,
    "granitehybrid": _granitehybrid,
    "qwen2": build_dense,
    "qwen3": build_dense,
    "mistral3": build_dense,
    "phi3": build_phi3,
    "glm4moe": build_glm4moe,
    "deepseek2": build_deepseek2,
    "qwen3next": build_qwen3next,
}


def supported(spec: ModelSpec) -> bool:
    """True when this module rebuilds the architecture's graph."""
    if spec.architecture not in _BUILDERS:
        return False
    names = frozenset(t.name for t in spec.tensors)
    if spec.architecture == "deepseek2" and not mla_supported(names):
        return False
    if spec.architecture == "qwen3next" and not gdn_supported(names):
        return False
    # Mixtral-style llama, MoE mistral3 / phi3 (PhiMoE-like): the MoE branch is not restated here
    return not (spec.architecture in ("llama", "mistral3", "phi3") and spec.hparams.n_expert)


def build_graph(spec: ModelSpec, params: GraphParams) -> Graph | None:
    """The compute graph llama.cpp builds for ``spec`` with these parameters, None when not supported."""
    if not supported(spec):
        return None
    g = GraphBuilder(spec, params)
    _BUILDERS[spec.architecture](g)
    return g.gf


@dataclass(frozen=True, slots=True)
class _Sized:
    """A compiled graph and its tensor sizes, affine in the cache cells: ``base + n_kv * per_kv + n_kv_swa * per_swa``.

    ``fixed`` holds the padded sizes that do not depend on the cells; ``varying`` the others.
    """

    program: Program
    fixed: tuple[int, ...]
    varying: tuple[tuple[int, int, int, int], ...]  # (tensor, base, per_kv, per_swa)

    def peak(self, n_kv: int, n_kv_swa: int) -> int:
        pad = list(self.fixed)
        a = CPU_ALIGNMENT
        for i, b, k, w in self.varying:
            pad[i] = (b + n_kv * k + n_kv_swa * w + a - 1) // a * a
        return self.program.run_padded(pad, a)


_SAMPLES = ((512, 768), (1024, 768), (512, 1280))  # (n_kv, n_kv_swa) the structure is built at


def _sized(spec: ModelSpec, p: GraphParams) -> _Sized | None:
    """Build the structure at two (three with sliding-window layers) cache sizes; sizes are affine in them."""
    swa = any(spec.hparams.swa_layers)
    graphs = []
    for n_kv, n_swa in _SAMPLES if swa else _SAMPLES[:2]:
        g = build_graph(spec, replace(p, n_kv=n_kv, n_kv_swa=n_swa))
        if g is None:
            return None
        graphs.append(g)
    a, b = ([t.nbytes for t in g.tensors] for g in graphs[:2])
    c = [t.nbytes for t in graphs[2].tensors] if swa else a
    if not len(a) == len(b) == len(c):  # pragma: no cover - the builders do not branch on sizes
        return None
    (k0, s0), (k1, _), (_, s1) = _SAMPLES
    if any((y - x) % (k1 - k0) for x, y in zip(a, b, strict=True)) or any(
        (y - x) % (s1 - s0) for x, y in zip(a, c, strict=True)
    ):  # pragma: no cover - shapes are linear in the cells; refuse rather than guess
        return None
    per_kv = tuple((y - x) // (k1 - k0) for x, y in zip(a, b, strict=True))
    per_swa = tuple((y - x) // (s1 - s0) for x, y in zip(a, c, strict=True))
    base = tuple(x - k0 * k - s0 * w for x, k, w in zip(a, per_kv, per_swa, strict=True))
    al = CPU_ALIGNMENT
    fixed = tuple((x + al - 1) // al * al if not (k or w) else 0 for x, k, w in zip(base, per_kv, per_swa, strict=True))
    varying = tuple((i, x, k, w) for i, (x, k, w) in enumerate(zip(base, per_kv, per_swa, strict=True)) if k or w)
    return _Sized(compile_graph(graphs[0], graphs[1:]), fixed, varying)


@dataclass(slots=True)
class _ModelCache:
    """Per model: whether it is supported, compiled structures by shape, results by settings."""

    supported: bool
    structures: dict[tuple[object, ...], _Sized | None] = field(default_factory=dict)
    results: dict[tuple[object, ...], int | None] = field(default_factory=dict)


_CACHE: dict[int, tuple[weakref.ref[ModelSpec], _ModelCache]] = {}
# The graph reads a model's hyperparameters, its tensor names and a few of its architecture's metadata
# keys, never its weight types: every quantization of one model shares its compiled structures.
_BY_STRUCTURE: dict[tuple[object, ...], _ModelCache] = {}
_MAX_STRUCTURES = 64


def _structure_key(spec: ModelSpec) -> tuple[object, ...]:
    prefix = spec.architecture + "."
    meta = tuple(sorted((k, repr(v)) for k, v in spec.metadata.items() if k.startswith(prefix)))
    return (spec.architecture, spec.hparams, frozenset(t.name for t in spec.tensors), meta)


def _cache(spec: ModelSpec) -> _ModelCache:
    key = id(spec)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is spec:
        return hit[1]

    def _forget(_ref: weakref.ref[ModelSpec], k: int = key) -> None:
        _CACHE.pop(k, None)

    skey = _structure_key(spec)
    entry = _BY_STRUCTURE.get(skey)
    if entry is None:
        if len(_BY_STRUCTURE) >= _MAX_STRUCTURES:
            _BY_STRUCTURE.clear()
        entry = _BY_STRUCTURE[skey] = _ModelCache(supported(spec))
    _CACHE[key] = (weakref.ref(spec, _forget), entry)
    return entry


def reserve_params(
    *,
    n_ubatch: int,
    n_seq: int,
    n_kv: int,
    n_kv_swa: int,
    unified: bool,
    flash_attn: bool,
    type_k: str,
    type_v: str,
) -> tuple[GraphParams, GraphParams]:
    """The two graphs ``sched_reserve`` sizes: the prompt (``n_ubatch`` outputs), then one token per sequence.

    ``graph_reserve`` rounds the tokens up to a multiple of the sequences, the outputs stay as asked.
    """
    n_seq = max(1, n_seq)
    n_stream = 1 if unified else n_seq
    pp, tg = (
        GraphParams(
            -(-n_out // n_seq) * n_seq, n_seq, n_out, n_kv, n_kv_swa, n_stream, n_seq, flash_attn, type_k, type_v
        )
        for n_out in (n_ubatch, n_seq)
    )
    return pp, tg


def cpu_compute_bytes(
    spec: ModelSpec,
    *,
    n_ubatch: int,
    n_seq: int,
    n_kv: int,
    n_kv_swa: int,
    unified: bool,
    flash_attn: bool,
    type_k: str,
    type_v: str,
) -> int | None:
    """The CPU compute buffer of a CPU-only context (``sched_reserve``), None when the graph is not supported.

    ``n_ubatch`` is the ubatch llama.cpp reserves (``min(n_ubatch, n_batch, n_ctx)``), ``n_kv`` and
    ``n_kv_swa`` the cells of one stream of the full-attention and sliding-window caches. Graph
    structures are built once per model and shape and kept for the model's lifetime; results are
    memoised.
    """
    cache = _cache(spec)
    if not cache.supported:
        return None
    n_seq = max(1, n_seq)
    n_stream = 1 if unified else n_seq
    structures, results = cache.structures, cache.results
    key = (n_ubatch, n_seq, n_kv, n_kv_swa, n_stream, flash_attn, type_k, type_v)
    if key in results:
        return results[key]
    peak = 0
    for params in reserve_params(
        n_ubatch=n_ubatch,
        n_seq=n_seq,
        n_kv=0,
        n_kv_swa=0,
        unified=unified,
        flash_attn=flash_attn,
        type_k=type_k,
        type_v=type_v,
    ):
        skey = (params.n_tokens, params.n_outputs, n_seq, n_stream, flash_attn, type_k, type_v)
        if skey not in structures:
            if len(structures) > 64:
                structures.clear()
            structures[skey] = _sized(spec, params)
        sized = structures[skey]
        if sized is None:
            results[key] = None
            return None
        peak = max(peak, sized.peak(n_kv, n_kv_swa))
    if len(results) > 4096:
        results.clear()
    results[key] = peak
    return peak
