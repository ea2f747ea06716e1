"""ggml's graph allocator, checked on small hand-built graphs against the rules of ggml/src/ggml-alloc.c.

Each expected peak is worked out by hand from those rules (restated in ``servefit.ggml_alloc``):
inputs first, best fit among the free blocks but the last, the open end otherwise, frees after the
last consumer, merging of adjacent free blocks, in-place reuse of a parent, outputs kept, views
keeping their source alive, sizes padded to 32 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from servefit.ggml_alloc import FLAG_OUTPUT, Graph, Tensor, compile_graph, graph_peak_bytes
from servefit.ggml_ops import Ops

OPS = Ops()


def _peak(roots: list[Tensor], sizes: Mapping[str, int]) -> int:
    """Expand ``roots`` in order and run the allocator with the named tensors' sizes (others: 0)."""
    g = Graph()
    for r in roots:
        g.expand(r)
    return compile_graph(g).run([sizes.get(t.name, 0) if not t.external else 0 for t in g.tensors])


def _named(t: Tensor, name: str) -> Tensor:
    t.name = name
    return t


def _sink(t: Tensor) -> Tensor:
    """A consumer that allocates nothing (a row store into an external tensor): frees ``t`` once run."""
    w = OPS.weight("f32", 8, 8)
    idx = OPS.weight("i64", 8)
    return OPS.set_rows(w, t, idx)


def test_graph_order_is_depth_first_sources_left_to_right_each_once() -> None:
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    b = _named(OPS.cont(x), "b")
    c = _named(OPS.add(a, b), "c")
    d = _named(OPS.mul(c, a), "d")
    g = Graph()
    g.expand(d)
    g.expand(c)  # already there: nothing added
    assert [t.name for t in g.nodes] == ["a", "b", "c", "d"]
    assert [t.name for t in g.leafs] == ["x"]


def test_a_chain_of_copies_reuses_the_freed_source() -> None:
    # y is placed after x; x is freed once y ran; z then fits in x's block: peak = |x| + |y|
    x = _named(OPS.input("f32", 8), "x")
    y = _named(OPS.cont(x), "y")
    z = _named(OPS.cont(y), "z")
    assert _peak([z], {"x": 1024, "y": 1024, "z": 1024}) == 2048


def test_sizes_are_padded_to_the_alignment() -> None:
    x = _named(OPS.input("f32", 8), "x")
    y = _named(OPS.cont(x), "y")
    assert _peak([y], {"x": 33, "y": 1}) == 64 + 32


def test_best_fit_takes_the_smallest_free_block_that_fits() -> None:
    # live: x [0,32) p1 [32,96) p3 [416,480) p5 [640,704); holes: p2 [96,416) = 320, p4 [480,640) = 160.
    # n (160) takes the 160 hole (first fit would take the 320 one), so m (320) still fits the 320 hole.
    x = _named(OPS.input("f32", 8), "x")
    ps = [_named(OPS.cont(x), f"p{i}") for i in range(1, 6)]
    n = _named(OPS.cont(x), "n")
    m = _named(OPS.cont(x), "m")
    roots = [*ps, _sink(ps[1]), _sink(ps[3]), n, m]
    sizes = {"x": 32, "p1": 64, "p2": 320, "p3": 64, "p4": 160, "p5": 64, "n": 160, "m": 320}
    assert _peak(roots, sizes) == 704


def test_a_tensor_larger_than_every_hole_goes_to_the_end() -> None:
    x = _named(OPS.input("f32", 8), "x")
    ps = [_named(OPS.cont(x), f"p{i}") for i in range(1, 4)]
    big = _named(OPS.cont(x), "big")
    roots = [*ps, _sink(ps[1]), big]
    # holes: p2 [96,416); big (448) fits nowhere but the end, which starts at 480
    assert _peak(roots, {"x": 32, "p1": 64, "p2": 320, "p3": 64, "big": 448}) == 480 + 448


def test_adjacent_free_blocks_merge() -> None:
    # p2 [96,416) and p3 [416,480) are freed one after the other and merge into [96,480): 384 fits there
    x = _named(OPS.input("f32", 8), "x")
    ps = [_named(OPS.cont(x), f"p{i}") for i in range(1, 5)]
    q = _named(OPS.cont(x), "q")
    roots = [*ps, _sink(ps[1]), _sink(ps[2]), q]
    assert _peak(roots, {"x": 32, "p1": 64, "p2": 320, "p3": 64, "p4": 64, "q": 384}) == 544


def test_a_block_freed_at_the_end_merges_with_the_open_end() -> None:
    # a [32,96) is freed, merging with the end block: b (128) then starts at 32, not at 96
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    b = _named(OPS.cont(x), "b")
    assert _peak([a, _sink(a), b], {"x": 32, "a": 64, "b": 128}) == 32 + 128


def test_graph_inputs_are_allocated_before_any_node() -> None:
    # x2 is only used late, but inputs are placed first: x1 [0,32) x2 [32,64) a [64,128).
    # Were x2 placed when first used it would take x1's freed block and the peak would be 96.
    x1 = _named(OPS.input("f32", 8), "x1")
    x2 = _named(OPS.input("f32", 8), "x2")
    a = _named(OPS.cont(x1), "a")
    b = _named(OPS.add(a, x2), "b")
    assert _peak([a, b], {"x1": 32, "x2": 32, "a": 64, "b": 64}) == 128


def test_in_place_op_reuses_a_parent_with_one_consumer() -> None:
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    b = _named(OPS.unary(a), "b")  # GGML_OP_UNARY can run in place: b takes a's block
    assert _peak([b], {"x": 64, "a": 64, "b": 64}) == 128


def test_no_in_place_when_the_parent_has_another_consumer() -> None:
    # x lives to the end. a [64,128) has two consumers, so b goes to [128,192); c then takes b's block.
    # Had b taken a's block the peak would be 128.
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    b = _named(OPS.unary(a), "b")
    c = _named(OPS.add(b, a), "c")
    e = _named(OPS.add(c, x), "e")
    assert _peak([e], {"x": 64, "a": 64, "b": 64, "c": 64, "e": 64}) == 192


def test_in_place_tries_the_sources_in_order() -> None:
    # x lives to the end; a [64,128) has two consumers so add(a, b) takes b's block [128,192); d goes
    # to the end [192,256). Without the reuse of b, c would need [192,256) and d [256,320).
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    b = _named(OPS.cont(x), "b")
    c = _named(OPS.add(a, b), "c")
    d = _named(OPS.cont(a), "d")
    e = _named(OPS.add(d, x), "e")
    assert _peak([c, e], {"x": 64, "a": 64, "b": 64, "c": 64, "d": 64, "e": 64}) == 256


def test_ops_outside_the_in_place_list_never_reuse() -> None:
    # x lives to the end: a [64,128), b = cont(a) [128,192) (GGML_OP_CONT is not in ggml_op_can_inplace,
    # else b would take a's block and the peak be 128); e = add(b, x) then runs in place of b
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    b = _named(OPS.cont(a), "b")
    e = _named(OPS.add(b, x), "e")
    assert _peak([e], {"x": 64, "a": 64, "b": 64, "e": 64}) == 192


def test_outputs_are_neither_reused_nor_freed() -> None:
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    a.flags |= FLAG_OUTPUT
    b = _named(OPS.unary(a), "b")  # cannot take a's block: a is an output
    c = _named(OPS.cont(x), "c")  # a stays: c goes after b (x's block is too small)
    assert _peak([b, c], {"x": 32, "a": 64, "b": 64, "c": 64}) == 32 + 64 + 64 + 64


def test_a_smaller_in_place_result_frees_the_parents_tail() -> None:
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    b = _named(OPS.unary(a), "b")  # takes a's [32,288) and releases [96,288)
    c = _named(OPS.cont(x), "c")  # fits the released tail
    assert _peak([b, c], {"x": 32, "a": 256, "b": 64, "c": 192}) == 32 + 256


def test_a_view_keeps_its_source_until_the_views_consumers_ran() -> None:
    # a [64,128); v views a; c reads v, so a lives until c ran: c [128,192); then d takes a's block
    x = _named(OPS.input("f32", 8), "x")
    a = _named(OPS.cont(x), "a")
    v = OPS.reshape(a, 2, 4)
    c = _named(OPS.cont(v), "c")
    d = _named(OPS.cont(x), "d")
    assert _peak([c, d], {"x": 64, "a": 64, "c": 64, "d": 64}) == 192


def test_views_and_external_tensors_take_no_space() -> None:
    w = OPS.weight("f32", 1024, 1024)
    x = OPS.input("f32", 1024)
    y = OPS.mul_mat(w, OPS.reshape(x, 1024, 1))
    g = Graph()
    g.expand(y)
    assert graph_peak_bytes(g) == 4096 + 4096  # x and y, F32 [1024]


# -- the layer memo against a full replay, on real model shapes ---------------------------------


@pytest.mark.parametrize(
    ("model_id", "quant"),
    [
        ("llama-3.1-8b-instruct", "Q4_K_M"),
        ("nemotron-3-super-120b-a12b", "Q4_K_S"),
        ("deepseek-v3", "Q4_K_M"),
        ("qwen3-next-80b-a3b-instruct", "Q4_K_M"),
    ],
)
@pytest.mark.parametrize(("n_kv", "n_ubatch", "n_seq", "flash_attn"), [(4096, 512, 1, True), (32768, 1024, 3, False)])
def test_skipping_repeated_layers_changes_nothing(
    model_id: str, quant: str, n_kv: int, n_ubatch: int, n_seq: int, flash_attn: bool
) -> None:
    from servefit.catalog.models import model_spec
    from servefit.ggml_graph import build_graph, reserve_params

    spec = model_spec(model_id, quant)
    for params in reserve_params(
        n_ubatch=n_ubatch,
        n_seq=n_seq,
        n_kv=n_kv,
        n_kv_swa=0,
        unified=False,
        flash_attn=flash_attn,
        type_k="f16",
        type_v="f16",
    ):
        graph = build_graph(spec, params)
        assert graph is not None
        program = compile_graph(graph)
        assert program.seg_nodes  # the builders mark their layers
        replay = replace(program, seg_nodes=(), seg_tensors=(), seg_print=(), pending=(), globals_=(), global_use=())
        sizes = [t.nbytes for t in graph.tensors]
        assert program.run(sizes) == replay.run(sizes)


MIXTRAL_8X7B = {  # mistralai/Mixtral-8x7B-v0.1 config.json: the llama architecture with routed experts
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1e6,
}


def test_unsupported_architectures_fall_back() -> None:
    from servefit.ggml_graph import cpu_compute_bytes, supported
    from servefit.inventory import spec_from_config
    from servefit.memory import Context, Layout, memory_breakdown

    spec = spec_from_config(MIXTRAL_8X7B, "Q4_K_M")
    assert spec.architecture == "llama" and spec.hparams.n_expert
    assert not supported(spec)
    args = {
        "n_ubatch": 512,
        "n_seq": 1,
        "n_kv": 4096,
        "n_kv_swa": 0,
        "unified": False,
        "type_k": "f16",
        "type_v": "f16",
    }
    assert cpu_compute_bytes(spec, flash_attn=True, **args) is None  # type: ignore[arg-type]
    assert memory_breakdown(spec, Context(4096), Layout(n_gpu=0)).host_compute > 0


def test_quantizations_of_one_model_share_the_graph() -> None:
    # the graph holds weights by name and shape only (matmul results are F32 whatever the weight type),
    # so every quantization of a model reuses one compiled structure; the graph built for the second
    # quantization from scratch must give the same buffer
    from servefit import ggml_graph
    from servefit.catalog.models import model_spec

    args = {"n_ubatch": 512, "n_seq": 2, "n_kv": 4096, "n_kv_swa": 0, "unified": False, "flash_attn": True}
    q4, q8 = model_spec("qwen3-0.6b", "Q4_K_M"), model_spec("qwen3-0.6b", "Q8_0")
    shared = ggml_graph.cpu_compute_bytes(q4, type_k="f16", type_v="f16", **args)  # type: ignore[arg-type]
    assert ggml_graph._cache(q8) is ggml_graph._cache(q4)
    ggml_graph._BY_STRUCTURE.clear()
    ggml_graph._CACHE.clear()
    fresh = ggml_graph.cpu_compute_bytes(q8, type_k="f16", type_v="f16", **args)  # type: ignore[arg-type]
    assert shared is not None and fresh == shared
    other = model_spec("qwen3-1.7b", "Q4_K_M")
    assert ggml_graph._cache(other) is not ggml_graph._cache(q8)
