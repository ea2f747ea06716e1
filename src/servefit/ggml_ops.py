"""The shapes of ggml's ops, restated from ggml/src/ggml.c: enough to rebuild llama.cpp's compute graphs.

Each constructor returns a :class:`~servefit.ggml_alloc.Tensor` with the type, shape ``ne``, strides
``nb``, sources and view source its ggml counterpart gives (``ggml_mul_mat`` is F32
``[a.ne1, b.ne1, b.ne2, b.ne3]`` over ``(a, b)``; element-wise ops duplicate their first source;
``ggml_view_*``, ``ggml_reshape_*``, ``ggml_permute`` and ``ggml_set_rows`` are views...). Only
shapes are computed, never values.
"""

from __future__ import annotations

import functools

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from servefit.ggml_alloc import FLAG_INPUT, Tensor

__all__ = ["Ops", "type_block"]

Shape = tuple[int, int, int, int]


@functools.lru_cache(maxsize=64)
def type_block(type_name: str) -> tuple[int, int]:
    """(values per block, bytes per block) of a GGML type (``ggml_blck_size``, ``ggml_type_size``)."""
    return GGML_QUANT_SIZES[GGMLQuantizationType[type_name.upper()]]


def _ne4(ne: tuple[int, ...]) -> Shape:
    e = tuple(ne) + (1,) * (4 - len(ne))
    return (e[0], e[1], e[2], e[3])


def _strides(type_name: str, ne: Shape) -> Shape:
    blck, size = type_block(type_name)
    nb0 = size
    nb1 = size * (ne[0] // blck)
    nb2 = nb1 * ne[1]
    return (nb0, nb1, nb2, nb2 * ne[2])


def _nbytes(type_name: str, ne: Shape, nb: Shape) -> int:
    if min(ne) <= 0:
        return 0
    blck, size = type_block(type_name)
    if blck == 1:
        n = size
        for i in range(4):
            n += (ne[i] - 1) * nb[i]
        return n
    n = ne[0] * nb[0] // blck
    for i in range(1, 4):
        n += (ne[i] - 1) * nb[i]
    return n


def _contiguous(t: Tensor) -> bool:
    return t.nb == _strides(t.type, t.ne)


class Ops:
    """A ggml context: creates tensors the way ggml's op constructors do (shapes only)."""

    def tensor(
        self, type_name: str, *ne: int, name: str = "", op: str = "NONE", src: tuple[Tensor, ...] = ()
    ) -> Tensor:
        shape = _ne4(ne)
        nb = _strides(type_name, shape)
        return Tensor(op, type_name, shape, nb, _nbytes(type_name, shape, nb), src, name=name)

    def input(self, type_name: str, *ne: int, name: str = "") -> Tensor:
        t = self.tensor(type_name, *ne, name=name)
        t.flags |= FLAG_INPUT
        return t

    def weight(self, type_name: str, *ne: int, name: str = "") -> Tensor:
        t = self.tensor(type_name, *ne, name=name)
        t.external = True
        return t

    def _dup(self, op: str, a: Tensor, *src: Tensor) -> Tensor:
        return self.tensor(a.type, *a.ne, op=op, src=(a, *src))

    # views -------------------------------------------------------------------------------
    def _view(self, op: str, a: Tensor, ne: Shape, nb: Shape, offs: int = 0) -> Tensor:
        base = a.view_src if a.view_src is not None else a
        t = Tensor(op, a.type, ne, nb, _nbytes(a.type, ne, nb), (a,), view_src=base, view_offs=a.view_offs + offs)
        t.external = base.external
        return t

    def view(self, a: Tensor, ne: tuple[int, ...], nb: tuple[int, ...], offs: int = 0) -> Tensor:
        """``ggml_view_{1,2,3,4}d``: ``nb`` gives nb[1:] (nb[0] is the type size)."""
        shape = _ne4(ne)
        strides = [type_block(a.type)[1], *nb]
        while len(strides) < 4:
            strides.append(strides[-1] * shape[len(strides) - 1])
        return self._view("VIEW", a, shape, (strides[0], strides[1], strides[2], strides[3]), offs)

    def reshape(self, a: Tensor, *ne: int) -> Tensor:
        shape = _ne4(ne)
        return self._view("RESHAPE", a, shape, _strides(a.type, shape))

    def view_tensor(self, a: Tensor, op: str = "VIEW") -> Tensor:
        return self._view(op, a, a.ne, a.nb)

    def permute(self, a: Tensor, *axes: int) -> Tensor:
        ne = [0] * 4
        nb = [0] * 4
        for i, ax in enumerate(axes):
            ne[ax] = a.ne[i]
            nb[ax] = a.nb[i]
        return self._view("PERMUTE", a, (ne[0], ne[1], ne[2], ne[3]), (nb[0], nb[1], nb[2], nb[3]))

    def transpose(self, a: Tensor) -> Tensor:
        return self._view("TRANSPOSE", a, (a.ne[1], a.ne[0], a.ne[2], a.ne[3]), (a.nb[1], a.nb[0], a.nb[2], a.nb[3]))

    def set_rows(self, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        """``ggml_set_rows``: rows ``b`` written into ``a`` at ``c``; a view of ``a`` with sources (b, c, a)."""
        t = self.view_tensor(a, "SET_ROWS")
        t.src = (b, c, a)
        return t

    def cpy(self, a: Tensor, b: Tensor) -> Tensor:
        t = self.view_tensor(b, "CPY")
        t.src = (a, b)
        return t

    # compute -----------------------------------------------------------------------------
    def cont(self, a: Tensor, *ne: int) -> Tensor:
        return self.tensor(a.type, *(ne or a.ne), op="CONT", src=(a,))

    def mul_mat(self, a: Tensor, b: Tensor) -> Tensor:
        return self.tensor("f32", a.ne[1], b.ne[1], b.ne[2], b.ne[3], op="MUL_MAT", src=(a, b))

    def mul_mat_id(self, a: Tensor, b: Tensor, ids: Tensor) -> Tensor:
        return self.tensor("f32", a.ne[1], ids.ne[0], b.ne[2], 1, op="MUL_MAT_ID", src=(a, b, ids))

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return self._dup("ADD", a, b)

    def add_id(self, a: Tensor, b: Tensor, ids: Tensor) -> Tensor:
        return self._dup("ADD_ID", a, b, ids)

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        return self._dup("MUL", a, b)

    def div(self, a: Tensor, b: Tensor) -> Tensor:
        return self._dup("DIV", a, b)

    def scale(self, a: Tensor) -> Tensor:
        return self._dup("SCALE", a)

    def clamp(self, a: Tensor) -> Tensor:
        return self._dup("CLAMP", a)

    def unary(self, a: Tensor) -> Tensor:
        """``ggml_silu``, ``ggml_gelu``, ``ggml_relu``, ``ggml_exp``, ``ggml_softplus``...: GGML_OP_UNARY."""
        return self._dup("UNARY", a)

    def sqr(self, a: Tensor) -> Tensor:
        return self._dup("SQR", a)

    def rms_norm(self, a: Tensor) -> Tensor:
        return self._dup("RMS_NORM", a)

    def norm(self, a: Tensor) -> Tensor:
        return self._dup("NORM", a)

    def rope(self, a: Tensor, pos: Tensor, factors: Tensor | None = None) -> Tensor:
        return self._dup("ROPE", a, pos, *((factors,) if factors is not None else ()))

    def soft_max(self, a: Tensor, mask: Tensor | None = None, sinks: Tensor | None = None) -> Tensor:
        src = tuple(s for s in (mask, sinks) if s is not None)
        return self._dup("SOFT_MAX", a, *src)

    def glu_split(self, a: Tensor, b: Tensor) -> Tensor:
        """``ggml_swiglu_split``, ``ggml_geglu_split``, ``ggml_swiglu_oai``: GGML_OP_GLU over (a, b)."""
        return self.tensor(a.type, *a.ne, op="GLU", src=(a, b))

    def glu(self, a: Tensor) -> Tensor:
        """``ggml_swiglu``, ``ggml_geglu``...: GGML_OP_GLU over the two halves of ``a`` (rows halve)."""
        return self.tensor(a.type, a.ne[0] // 2, *a.ne[1:], op="GLU", src=(a,))

    def get_rows(self, a: Tensor, b: Tensor) -> Tensor:
        type_name = "i32" if a.type == "i32" else "f32"
        return self.tensor(type_name, a.ne[0], b.ne[0], b.ne[1], b.ne[2], op="GET_ROWS", src=(a, b))

    def flash_attn_ext(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor, sinks: Tensor | None = None) -> Tensor:
        src = (q, k, v, mask) + ((sinks,) if sinks is not None else ())
        return self.tensor("f32", v.ne[0], q.ne[2], q.ne[1], q.ne[3], op="FLASH_ATTN_EXT", src=src)

    def argsort(self, a: Tensor) -> Tensor:
        return self.tensor("i32", *a.ne, op="ARGSORT", src=(a,))

    def top_k(self, a: Tensor, k: int) -> Tensor:
        return self.tensor("i32", k, a.ne[1], a.ne[2], a.ne[3], op="TOP_K", src=(a,))

    def sum_rows(self, a: Tensor) -> Tensor:
        return self.tensor(a.type, 1, a.ne[1], a.ne[2], a.ne[3], op="SUM_ROWS", src=(a,))

    def concat(self, a: Tensor, b: Tensor, dim: int) -> Tensor:
        ne = list(a.ne)
        ne[dim] += b.ne[dim]
        return self.tensor(a.type, *ne, op="CONCAT", src=(a, b))

    def repeat(self, a: Tensor, *ne: int) -> Tensor:
        return self.tensor(a.type, *ne, op="REPEAT", src=(a,))

    def is_contiguous(self, a: Tensor) -> bool:
        return _contiguous(a)
