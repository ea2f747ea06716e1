"""ggml's graph allocator, restated: the peak bytes of a compute graph's buffer.

A compute graph is a list of tensors: *leafs* (no op: weights, the KV cache, the graph inputs) and
*nodes* (an op over up to ten sources), in the order ``ggml_build_forward_expand`` visits them
(depth first, sources left to right, each tensor once). A view (``VIEW``, ``RESHAPE``, ``PERMUTE``,
``TRANSPOSE``, ``SET_ROWS``...) shares the memory of its ``view_src`` and is never allocated.
Tensors that already live in a buffer (weights, KV cache) are *external*.

``ggml_gallocr_alloc_graph_impl`` (ggml/src/ggml-alloc.c) sizes the buffer in one pass:

1. every leaf that is not external is allocated, in leaf order; then, walking the nodes, each
   node flagged as a graph input and each input source is allocated, while the consumers
   (``n_children``) and views (``n_views``) of every tensor are counted;
2. for each node in order: its sources, then the node itself, are allocated unless already
   allocated, external or views. An op of ``ggml_op_can_inplace`` takes over the memory of a
   source that the allocator owns, is not a graph output, has the node's exact layout (type,
   shape, strides) and whose only consumer is this node with no view of it; when the node is
   smaller than that source the tail is freed. Otherwise the tensor goes to the best-fitting
   free block (the smallest that fits, the later one on ties) among all blocks but the last, or
   at the start of the last block (the open end of the buffer);
3. after the node, each source loses a consumer; a source with no consumer and no view left is
   freed (a view releases its ``view_src`` instead, once that has no view and no consumer left).
   Graph outputs are never freed. A freed range merges with the free block that ends where it
   starts and with the one that starts where it ends.

Sizes are padded to the buffer's alignment (32 bytes for the CPU, ``TENSOR_ALIGNMENT``); the
buffer's size is the highest end offset reached (``max_size`` of the single chunk: the CPU
buffer type has no size limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

__all__ = [
    "FLAG_INPUT",
    "FLAG_OUTPUT",
    "INPLACE_OPS",
    "Graph",
    "Program",
    "Tensor",
    "compile_graph",
    "graph_peak_bytes",
]

FLAG_INPUT = 1  # GGML_TENSOR_FLAG_INPUT
FLAG_OUTPUT = 2  # GGML_TENSOR_FLAG_OUTPUT

# ggml_op_can_inplace (ggml/src/ggml-alloc.c): these ops may write over a source
INPLACE_OPS = frozenset(
    {
        "FILL",
        "SCALE",
        "DIAG_MASK_ZERO",
        "DIAG_MASK_INF",
        "ADD",
        "ADD_ID",
        "ADD1",
        "SUB",
        "MUL",
        "DIV",
        "SQR",
        "SQRT",
        "LOG",
        "UNARY",
        "ROPE",
        "ROPE_BACK",
        "SILU_BACK",
        "RMS_NORM",
        "RMS_NORM_BACK",
        "CLAMP",
        "SOFT_MAX",
        "SOFT_MAX_BACK",
    }
)


@dataclass(eq=False, slots=True)
class Tensor:
    """One tensor of a compute graph: enough of ``ggml_tensor`` to build graphs and allocate them."""

    op: str  # "NONE" for leafs, else the GGML op name ("MUL_MAT", "ROPE", "UNARY", ...)
    type: str  # GGML type name, lower case ("f32", "f16", "i32", "q8_0"...)
    ne: tuple[int, int, int, int]
    nb: tuple[int, int, int, int]
    nbytes: int  # ggml_nbytes
    src: tuple[Tensor, ...] = ()
    view_src: Tensor | None = None
    view_offs: int = 0
    flags: int = 0
    external: bool = False  # data lives in another buffer (weights, KV cache, recurrent state)
    name: str = ""
    index: int = field(default=-1, repr=False)  # position in Graph.tensors, set by the graph

    @property
    def is_view(self) -> bool:
        return self.view_src is not None

    def layout(self) -> tuple[str, tuple[int, int, int, int], tuple[int, int, int, int]]:
        """What ``ggml_are_same_layout`` compares."""
        return (self.type, self.ne, self.nb)


@dataclass(slots=True)
class Graph:
    """A compute graph in ``ggml_cgraph`` order: nodes and leafs, each tensor indexed once."""

    nodes: list[Tensor] = field(default_factory=list)
    leafs: list[Tensor] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    marks: list[tuple[int, int]] = field(default_factory=list)  # (nodes, tensors) where each layer began

    def mark(self) -> None:
        """Note a layer boundary: lets the allocator recognise repeated layers and skip them."""
        self.marks.append((len(self.nodes), len(self.tensors)))

    def expand(self, root: Tensor) -> None:
        """``ggml_build_forward_expand``: append ``root``'s unvisited ancestors, depth first, then ``root``."""
        if root.index >= 0:
            return
        stack: list[tuple[Tensor, int]] = [(root, 0)]
        root.index = -2  # visiting
        while stack:
            t, i = stack[-1]
            if i < len(t.src):
                stack[-1] = (t, i + 1)
                s = t.src[i]
                if s.index == -1:
                    s.index = -2
                    stack.append((s, 0))
                continue
            stack.pop()
            t.index = len(self.tensors)
            self.tensors.append(t)
            (self.leafs if t.op == "NONE" else self.nodes).append(t)


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class _Blocks:
    """``ggml_dyn_tallocr`` with one chunk: free blocks sorted by offset, the last one open-ended."""

    __slots__ = ("align", "max_size", "offs", "peak", "sizes")

    END = 1 << 62

    def __init__(self, align: int) -> None:
        self.align = align
        self.offs = [0]
        self.sizes = [self.END]
        self.max_size = 0
        self.peak = 0  # highest end offset since the last reset (one segment)

    def alloc(self, size: int) -> int:
        size = _pad(size, self.align)
        sizes = self.sizes
        best = -1
        best_size = self.END
        for i in range(len(sizes) - 1):
            s = sizes[i]
            if size <= s <= best_size:
                best = i
                best_size = s
        if best < 0:
            best = len(sizes) - 1
        addr = self.offs[best]
        self.offs[best] = addr + size
        sizes[best] -= size
        if sizes[best] == 0:
            del self.offs[best]
            del sizes[best]
        end = addr + size
        if end > self.peak:
            self.peak = end
            if end > self.max_size:
                self.max_size = end
        return addr

    def free(self, addr: int, size: int) -> None:
        size = _pad(size, self.align)
        offs, sizes = self.offs, self.sizes
        n = len(offs)
        for i in range(n):
            if offs[i] + sizes[i] == addr:
                sizes[i] += size
                if i < n - 1 and offs[i] + sizes[i] == offs[i + 1]:
                    sizes[i] += sizes[i + 1]
                    del offs[i + 1]
                    del sizes[i + 1]
                return
            if addr + size == offs[i]:
                offs[i] = addr
                sizes[i] += size
                if i > 0 and offs[i - 1] + sizes[i - 1] == offs[i]:
                    sizes[i - 1] += sizes[i]
                    del offs[i]
                    del sizes[i]
                return
        pos = 0
        while pos < n and offs[pos] < addr:
            pos += 1
        offs.insert(pos, addr)
        sizes.insert(pos, size)


@dataclass(frozen=True, slots=True)
class Program:
    """A graph reduced to what the allocator reads: integer arrays indexed by tensor position.

    Everything but the sizes is fixed by the graph's structure, so one program serves every size
    vector of the same structure (``run(sizes)``); consumer and view counts are counted once here.

    Layers: the graph is cut into segments at the layer marks, each with a structural fingerprint
    (relative references, layouts, flags). What the allocator does over a segment depends only on
    its state at the segment's start (free blocks, the earlier tensors the segment refers to, the
    graph inputs) and on the structure of that segment and of those referring back into it; so
    each (state, structure) met again reuses the recorded outcome (state at the next boundary and
    the highest offset reached) instead of replaying the segment. Identical layers cost one lookup.
    """

    alloc_first: tuple[int, ...]  # leafs, then graph inputs met while counting (allocation order)
    nodes: tuple[int, ...]
    srcs: tuple[tuple[int, ...], ...]  # per node
    view_src: tuple[int, ...]  # -1 when not a view
    can_own: tuple[bool, ...]  # neither a view nor external
    output: tuple[bool, ...]
    inplace: tuple[bool, ...]  # op may reuse a source
    layout: tuple[int, ...]  # equal ids <=> same type, shape and strides
    children: tuple[int, ...]
    views: tuple[int, ...]
    seg_nodes: tuple[int, ...] = ()  # node position where each segment starts
    seg_tensors: tuple[int, ...] = ()  # tensor index where each segment starts
    seg_print: tuple[int, ...] = ()  # fingerprint id per segment
    pending: tuple[tuple[int, ...], ...] = ()  # per boundary: earlier layer tensors still referenced
    globals_: tuple[int, ...] = ()  # graph inputs and their views
    global_use: tuple[tuple[int, ...], ...] = ()  # per segment, references to each of globals_
    reach: int = 1  # how many segments back a reference goes at most

    def run(self, sizes: Sequence[int], alignment: int = 32) -> int:
        """Peak bytes for these tensor sizes (``ggml_nbytes``), padded to ``alignment``."""
        return self.run_padded([(x + alignment - 1) // alignment * alignment for x in sizes], alignment)

    def run_padded(self, pad: Sequence[int], alignment: int = 32) -> int:
        """``run`` for sizes already padded to ``alignment``."""
        children = list(self.children)
        views = list(self.views)
        allocated = [False] * len(pad)
        addr = [0] * len(pad)
        blocks = _Blocks(alignment)
        can_own, output, inplace, layout, view_src = self.can_own, self.output, self.inplace, self.layout, self.view_src
        srcs, nodes = self.srcs, self.nodes

        def allocate(i: int, node_srcs: tuple[int, ...]) -> None:
            allocated[i] = True
            if inplace[i]:
                for j in node_srcs:
                    if allocated[j] and not output[j] and layout[j] == layout[i] and children[j] == 1 and views[j] == 0:
                        addr[i] = addr[j]
                        allocated[j] = False
                        if pad[j] > pad[i]:
                            blocks.free(addr[j] + pad[i], pad[j] - pad[i])
                        return
            addr[i] = blocks.alloc(pad[i])

        for i in self.alloc_first:
            if can_own[i] and not allocated[i]:
                allocate(i, ())
        seg_nodes, seg_tensors, fp, pending, glob, use = (
            self.seg_nodes,
            self.seg_tensors,
            self.seg_print,
            self.pending,
            self.globals_,
            self.global_use,
        )
        n_seg, reach = len(seg_nodes), self.reach
        memo: dict[tuple[object, ...], tuple[_State, tuple[int, ...], int, tuple[int, ...]]] = {}
        open_key: tuple[object, ...] | None = None
        open_children: list[int] = []
        m = 0
        n = 0
        n_nodes = len(nodes)
        while n < n_nodes:
            if m < n_seg and n == seg_nodes[m]:
                base = seg_tensors[m]
                state: _State = (
                    tuple(blocks.offs),
                    tuple(blocks.sizes),
                    tuple((t - base, allocated[t], addr[t], children[t], views[t]) for t in pending[m]),
                    tuple((allocated[g], addr[g]) for g in glob),
                )
                if open_key is not None:  # the segment just simulated: remember where it led
                    used = tuple(c - children[g] for c, g in zip(open_children, glob, strict=True))
                    memo[open_key] = (state, used, blocks.peak, tuple(t - base for t in pending[m]))
                    open_key = None
                if m + reach < n_seg:
                    fate = tuple(
                        (children[g], views[g]) if children[g] <= u else None for g, u in zip(glob, use[m], strict=True)
                    )
                    key = (state, fp[m : m + reach + 1], fate)
                    hit = memo.get(key)
                    nxt = seg_tensors[m + 1]
                    if hit is not None and hit[3] == tuple(t - nxt for t in pending[m + 1]):
                        after, used, peak, _rel = hit
                        blocks.offs, blocks.sizes = list(after[0]), list(after[1])
                        for rel, a_, ad, ch, vw in after[2]:
                            u_ = nxt + rel
                            allocated[u_], addr[u_], children[u_], views[u_] = a_, ad, ch, vw
                        for g, (a_, ad), d in zip(glob, after[3], used, strict=True):
                            allocated[g], addr[g] = a_, ad
                            children[g] -= d
                        blocks.max_size = max(blocks.max_size, peak)
                        m += 1
                        n = seg_nodes[m]
                        continue
                    open_key = key
                    open_children = [children[g] for g in glob]
                    blocks.peak = 0
                m += 1
            i = nodes[n]
            node_srcs = srcs[n]
            for j in node_srcs:
                if can_own[j] and not allocated[j]:
                    allocate(j, ())
            if can_own[i] and not allocated[i]:
                allocate(i, node_srcs)
            for j in node_srcs:
                c = children[j] - 1
                children[j] = c
                if c == 0 and views[j] == 0:
                    k = view_src[j]
                    if k >= 0:
                        views[k] -= 1
                        if views[k] == 0 and children[k] == 0 and allocated[k] and not output[k]:
                            blocks.free(addr[k], pad[k])
                            allocated[k] = False
                    elif allocated[j] and not output[j]:
                        blocks.free(addr[j], pad[j])
                        allocated[j] = False
            n += 1
        return blocks.max_size


# allocator state at a segment boundary: free blocks (offsets, sizes), the earlier tensors still
# referenced (relative index, allocated, offset, consumers left, views left), graph inputs (allocated, offset)
_State = tuple[
    tuple[int, ...], tuple[int, ...], tuple[tuple[int, bool, int, int, int], ...], tuple[tuple[bool, int], ...]
]


def compile_graph(graph: Graph, same_structure: Sequence[Graph] = ()) -> Program:
    """The allocator's view of ``graph`` (``ggml_gallocr_alloc_graph_impl``'s first pass done once).

    ``same_structure``: graphs built the same way with other sizes; two tensors then share a layout
    only where they do in every one of them.
    """
    ts = graph.tensors
    others = [g.tensors for g in same_structure]
    n = len(ts)
    children = [0] * n
    views = [0] * n
    first = [t.index for t in graph.leafs]
    layouts: dict[tuple[object, ...], int] = {}
    for node in graph.nodes:
        if node.view_src is not None and node.op != "NONE":
            views[node.view_src.index] += 1
        if node.flags & FLAG_INPUT:
            first.append(node.index)
        for s in node.src:
            children[s.index] += 1
            if s.flags & FLAG_INPUT:
                first.append(s.index)
    layout = tuple(layouts.setdefault((t.layout(), *(o[t.index].layout() for o in others)), len(layouts)) for t in ts)
    is_global = [False] * n
    for t in ts:
        vs = t.view_src
        is_global[t.index] = bool(t.flags & FLAG_INPUT) or (vs is not None and is_global[vs.index])
    program = Program(
        alloc_first=tuple(first),
        nodes=tuple(t.index for t in graph.nodes),
        srcs=tuple(tuple(s.index for s in t.src) for t in graph.nodes),
        view_src=tuple(t.view_src.index if t.view_src is not None else -1 for t in ts),
        can_own=tuple(not t.external and t.view_src is None for t in ts),
        output=tuple(bool(t.flags & FLAG_OUTPUT) for t in ts),
        inplace=tuple(t.op in INPLACE_OPS for t in ts),
        layout=layout,
        children=tuple(children),
        views=tuple(views),
    )
    if len(graph.marks) < 3:
        return program
    return _segmented(program, graph, is_global)


def _segmented(p: Program, graph: Graph, is_global: list[bool]) -> Program:
    ts = graph.tensors
    n = len(ts)
    marks = graph.marks
    seg_nodes = tuple(a for a, _b in marks)
    seg_tensors = tuple(b for _a, b in marks)
    seg_of = [0] * n
    bounds = [*seg_tensors, n]
    for m in range(len(marks)):
        for t in range(bounds[m], bounds[m + 1]):
            seg_of[t] = m
    node_pos = {t: pos for pos, t in enumerate(p.nodes)}
    node_seg = [0] * len(p.nodes)
    m = 0
    for pos in range(len(p.nodes)):
        while m + 1 < len(seg_nodes) and pos >= seg_nodes[m + 1]:
            m += 1
        node_seg[pos] = m
    external = [not p.can_own[t] and p.view_src[t] < 0 for t in range(n)]
    last_ref = [-1] * n
    reach = 1
    for pos, node_srcs in enumerate(p.srcs):
        for s in node_srcs:
            for r in (s, p.view_src[s]):
                if r >= 0 and not is_global[r] and not external[r]:
                    last_ref[r] = pos
                    reach = max(reach, node_seg[pos] - seg_of[r])

    def ref(r: int, base: int) -> object:
        if r < 0:
            return None
        if is_global[r]:
            return ("g", r)
        if external[r]:
            return "e"
        return r - base

    prints: dict[tuple[object, ...], int] = {}
    seg_print = []
    for m in range(len(marks)):
        base = bounds[m]
        rows = []
        for t in range(base, bounds[m + 1]):
            pos = node_pos.get(t, -1)
            srcs = tuple(ref(s, base) for s in p.srcs[pos]) if pos >= 0 else None
            rows.append((p.layout[t], p.can_own[t], p.output[t], p.inplace[t], ref(p.view_src[t], base), srcs))
        seg_print.append(prints.setdefault(tuple(rows), len(prints)))
    glob = [t for t in range(n) if is_global[t]]
    gpos = {g: i for i, g in enumerate(glob)}
    use = [[0] * len(glob) for _ in marks]
    for pos, node_srcs in enumerate(p.srcs):
        for s in node_srcs:
            if s in gpos:
                use[node_seg[pos]][gpos[s]] += 1
    pending: list[list[int]] = [[] for _ in marks]
    for t in range(n):
        if last_ref[t] < 0:
            continue
        for m in range(seg_of[t] + 1, len(marks)):
            if seg_nodes[m] > last_ref[t]:
                break
            pending[m].append(t)
    return replace(
        p,
        seg_nodes=seg_nodes,
        seg_tensors=seg_tensors,
        seg_print=tuple(seg_print),
        pending=tuple(tuple(x) for x in pending),
        globals_=tuple(glob),
        global_use=tuple(tuple(u) for u in use),
        reach=reach,
    )


def graph_peak_bytes(graph: Graph, alignment: int = 32) -> int:
    """Bytes of the buffer ggml's graph allocator reserves for ``graph`` (``ggml_gallocr_reserve``)."""
    return compile_graph(graph).run([t.nbytes for t in graph.tensors], alignment)
