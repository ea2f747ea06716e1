"""Streaming GGUF header reader: any GGUF source to a :class:`~servefit.model.ModelSpec`.

The reader parses GGUF v2 and v3 headers (little- or big-endian) — every metadata value type,
nested arrays included, the tensor infos and the alignment — from a byte source, and never reads
tensor data. It checks what llama.cpp's ``gguf_init_from_file`` checks, and every count or length
against the bytes that remain before using it, so a hostile header ends in one
:class:`~servefit.errors.GGUFError` naming the file, the offset and the key or tensor.

``read_model_spec`` then turns the header(s) into hyperparameters the way llama.cpp's
``load_hparams`` does (per-layer arrays, head sizes, experts, SSM, sliding-window pattern) and
classifies each layer from the tensors it really has.

Sources: llama.cpp in llama-cpp-python 0.3.36 — ``ggml/src/gguf.cpp`` (format and checks),
``src/llama-model.cpp`` and ``src/models/*.cpp`` (hparams, SWA patterns), ``src/llama-hparams.cpp``
(``set_swa_pattern``); ``gguf.GGML_QUANT_SIZES`` for tensor byte sizes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import gguf as ggufpy

from servefit.errors import GGUFError, ModelError, SourceError
from servefit.model import Hparams, LayerInfo, ModelSpec, TensorInfo, TensorRole, layer_index_of, role_of
from servefit.sources import ByteSource, HttpSource, Progress, open_part, resolve_source

__all__ = [
    "GGUFArray",
    "GGUFHeader",
    "RawTensor",
    "ftype_name",
    "read_header",
    "read_headers",
    "read_model_spec",
    "spec_from_headers",
    "swa_layers",
]

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME_BYTES = 63  # GGML_MAX_NAME is 64 including the terminating NUL
MAX_STRING_BYTES = 64 * 1024 * 1024  # no real key or value comes near (chat templates are ~100 KiB)
MAX_ARRAY_ITEMS = 1 << 30  # GGUF_MAX_ARRAY_ELEMENTS
MAX_ARRAY_DEPTH = 4
MAX_TENSORS = 1 << 24
MAX_KV = 1 << 20
MAX_LAYERS = 4096  # llama.cpp's LLAMA_MAX_LAYERS is 512
KEEP_ARRAY_ITEMS = 4096  # longer arrays keep their type and length only (tokens, merges, scores)
READ_BLOCK_BYTES = 1 << 20

# GGUF value types: id -> (name, struct code, size); STRING = 8 and ARRAY = 9 are variable-sized.
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, tuple[str, str, int]] = {
    0: ("UINT8", "B", 1),
    1: ("INT8", "b", 1),
    2: ("UINT16", "H", 2),
    3: ("INT16", "h", 2),
    4: ("UINT32", "I", 4),
    5: ("INT32", "i", 4),
    6: ("FLOAT32", "f", 4),
    7: ("BOOL", "?", 1),
    10: ("UINT64", "Q", 8),
    11: ("INT64", "q", 8),
    12: ("FLOAT64", "d", 8),
}
_STRUCTS = {order + code: struct.Struct(order + code) for order in "<>" for code in "BbHhIiQqfd?"}
_TYPE_NAMES = {k: v[0] for k, v in _SCALARS.items()} | {_STRING: "STRING", _ARRAY: "ARRAY"}
_MIN_VALUE_BYTES = {k: v[2] for k, v in _SCALARS.items()} | {_STRING: 8, _ARRAY: 12}


@dataclass(frozen=True, slots=True)
class GGUFArray:
    """A metadata array: item type name, length, and the items when the array is short."""

    item_type: str  # "UINT32", "STRING", "ARRAY", ...
    length: int
    values: tuple[Any, ...] | None  # None when longer than KEEP_ARRAY_ITEMS


@dataclass(frozen=True, slots=True)
class RawTensor:
    """A tensor info as stored: name, shape in GGML order, GGML type id, offset in the data section."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class GGUFHeader:
    """One GGUF file's header."""

    path: str
    version: int
    byte_order: str  # "<" or ">"
    metadata: dict[str, Any]  # scalars as int/float/bool/str, arrays as GGUFArray
    value_types: dict[str, str]  # key -> GGUF value type name
    tensors: tuple[RawTensor, ...]
    alignment: int
    data_offset: int  # where tensor data starts (the header's size, padding included)
    data_bytes: int  # size of the data section implied by the tensor infos
    file_bytes: int  # size of the file (from the source, else data_offset + data_bytes)


class _Cursor:
    """Sequential reads over a ByteSource with bounds checks; errors name the file and offset."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.path = source.name
        self.pos = 0
        self._buf = b""
        self._buf_start = 0
        self.order = "<"

    @property
    def size(self) -> int | None:
        return self.source.size

    def remaining(self) -> int | None:
        size = self.source.size
        return None if size is None else size - self.pos

    def fail(self, message: str, *, key: str | None = None, offset: int | None = None) -> GGUFError:
        at = self.pos if offset is None else offset
        where = f" (key {key!r})" if key else ""
        return GGUFError(f"{self.path}: {message} at offset {at}{where}", path=self.path, offset=at, key=key)

    def take(self, n: int, *, what: str, key: str | None = None) -> bytes:
        rel = self.pos - self._buf_start
        if rel >= 0 and rel + n <= len(self._buf):
            out = self._buf[rel : rel + n]
        else:
            rem = self.remaining()
            if rem is not None and n > rem:
                raise self.fail(f"truncated: {what} needs {n} bytes, {max(rem, 0)} left in the file", key=key)
            if self.source.buffered:  # in memory: take what is there, up to a block, without new I/O
                want = max(n, min(self.source.available(self.pos), READ_BLOCK_BYTES))
            else:
                want = max(n, READ_BLOCK_BYTES)
            block = self.source.read(self.pos, want if rem is None else min(want, rem))
            if len(block) < n:
                raise self.fail(f"truncated: {what} needs {n} bytes, the file ends after {len(block)}", key=key)
            self._buf, self._buf_start = block, self.pos
            out = block[:n]
        self.pos += n
        return out

    def skip(self, n: int, *, what: str, key: str | None = None) -> None:
        rem = self.remaining()
        if rem is not None and n > rem:
            raise self.fail(f"truncated: {what} needs {n} bytes, {max(rem, 0)} left in the file", key=key)
        if rem is None:
            self.take(n, what=what, key=key)
        else:
            self.pos += n

    def strings(self, n: int, key: str, *, keep: bool) -> tuple[str, ...] | None:
        """n length-prefixed strings; a fast path reads them straight from the buffered block."""
        out: list[str] | None = [] if keep else None
        u64 = _STRUCTS[self.order + "Q"]
        for _ in range(n):
            buf, rel = self._buf, self.pos - self._buf_start
            if rel >= 0 and rel + 8 <= len(buf):
                (length,) = u64.unpack_from(buf, rel)
                end = rel + 8 + length
                if end <= len(buf):  # inside a block already read from the file, so within its size
                    if out is not None:
                        out.append(buf[rel + 8 : end].decode("utf-8", errors="replace"))
                    self.pos += 8 + length
                    continue
            value = self.string("string value", key)
            if out is not None:
                out.append(value)
        return tuple(out) if out is not None else None

    def unpack(self, code: str, *, what: str, key: str | None = None) -> Any:
        fmt = _STRUCTS[self.order + code]
        return fmt.unpack(self.take(fmt.size, what=what, key=key))[0]

    def u64(self, what: str, key: str | None = None) -> int:
        return int(self.unpack("Q", what=what, key=key))

    def count(self, item_bytes: int, *, what: str, key: str | None = None, cap: int) -> int:
        """Read a u64 count and reject it before anything is sized by it: a cap, and count * minimum
        item size <= bytes left in the file. Errors point at the count itself."""
        start = self.pos
        count = self.u64(what, key)
        if count > cap:
            raise self.fail(f"{what} is {count}, more than the limit of {cap}", key=key, offset=start)
        rem = self.remaining()
        if rem is not None and count * item_bytes > rem:
            raise self.fail(
                f"{what} is {count} but only {rem} bytes remain (need at least {count * item_bytes})",
                key=key,
                offset=start,
            )
        return count

    def string(self, what: str, key: str | None = None, *, cap: int = MAX_STRING_BYTES) -> str:
        start = self.pos
        n = self.u64(f"{what} length", key)
        if n > cap:
            raise self.fail(f"{what} length {n} exceeds the limit of {cap} bytes", key=key, offset=start)
        rem = self.remaining()
        if rem is not None and n > rem:
            raise self.fail(f"{what} length {n} exceeds the {rem} bytes left in the file", key=key, offset=start)
        return self.take(n, what=what, key=key).decode("utf-8", errors="replace")


def _read_value(cur: _Cursor, vtype: int, key: str, depth: int = 0) -> Any:
    if vtype in _SCALARS:
        _, code, _ = _SCALARS[vtype]
        return cur.unpack(code, what=f"{_TYPE_NAMES[vtype]} value", key=key)
    if vtype == _STRING:
        return cur.string("string value", key)
    if vtype == _ARRAY:
        start = cur.pos
        item_type = int(cur.unpack("I", what="array item type", key=key))
        if item_type not in _TYPE_NAMES:
            raise cur.fail(f"unknown array item type {item_type}", key=key, offset=start)
        if item_type == _ARRAY and depth + 1 >= MAX_ARRAY_DEPTH:
            raise cur.fail(f"arrays nested deeper than {MAX_ARRAY_DEPTH}", key=key, offset=start)
        n = cur.count(_MIN_VALUE_BYTES[item_type], what="array length", key=key, cap=MAX_ARRAY_ITEMS)
        keep = n <= KEEP_ARRAY_ITEMS
        values: tuple[Any, ...] | None
        if item_type in _SCALARS:
            _, code, size = _SCALARS[item_type]
            if keep:
                raw = cur.take(n * size, what=f"array of {n} {_TYPE_NAMES[item_type]}", key=key)
                values = struct.unpack(f"{cur.order}{n}{code}", raw)
            else:
                cur.skip(n * size, what=f"array of {n} {_TYPE_NAMES[item_type]}", key=key)
                values = None
        elif item_type == _STRING:
            values = cur.strings(n, key, keep=keep)
        else:
            items = [_read_value(cur, item_type, key, depth + 1) for _ in range(n)] if keep else None
            if not keep:
                for _ in range(n):
                    _read_value(cur, item_type, key, depth + 1)
            values = tuple(items) if items is not None else None
        return GGUFArray(_TYPE_NAMES[item_type], n, values)
    raise cur.fail(f"unknown value type {vtype}", key=key)


# GGML type id -> (name, block size, bytes per block), from gguf.GGML_QUANT_SIZES
_GGML_TYPES: dict[int, tuple[str, int, int]] = {
    int(t): (t.name, *ggufpy.GGML_QUANT_SIZES[t]) for t in ggufpy.GGMLQuantizationType if t in ggufpy.GGML_QUANT_SIZES
}


def read_header(source: ByteSource) -> GGUFHeader:
    """Parse one GGUF header from ``source``; reads no tensor data."""
    cur = _Cursor(source)
    magic = cur.source.read(0, 4)
    if magic != GGUF_MAGIC:
        if len(magic) < 4:
            raise cur.fail(f"not a GGUF file (only {len(magic)} bytes)", offset=0)
        raise cur.fail(f"not a GGUF file (magic {magic!r})", offset=0)
    cur.pos = 4
    raw_version = cur.take(4, what="version")
    version = struct.unpack("<I", raw_version)[0]
    if version > 0xFFFF and struct.unpack(">I", raw_version)[0] in (2, 3):
        cur.order, version = ">", struct.unpack(">I", raw_version)[0]
    if version == 1:
        raise cur.fail("GGUF version 1 is not supported (only 2 and 3)", offset=4)
    if version not in (2, 3):
        raise cur.fail(f"unsupported GGUF version {version} (only 2 and 3)", offset=4)
    # minimum tensor info: name length 8 + name 1 + n_dims 4 + type 4 + offset 8
    n_tensors = cur.count(25, what="tensor count", cap=MAX_TENSORS)
    # minimum key/value: key length 8 + key 1 + type 4 + value 1
    n_kv = cur.count(14, what="metadata count", cap=MAX_KV)

    metadata: dict[str, Any] = {}
    value_types: dict[str, str] = {}
    for i in range(n_kv):
        start = cur.pos
        key = cur.string(f"key of metadata entry {i}", cap=65535)
        if not key:
            raise cur.fail(f"metadata entry {i} has an empty key", offset=start)
        if key in metadata:
            raise cur.fail(f"duplicate metadata key {key!r}", key=key, offset=start)
        vtype = int(cur.unpack("I", what="value type", key=key))
        if vtype not in _TYPE_NAMES:
            raise cur.fail(f"unknown value type {vtype}", key=key, offset=cur.pos - 4)
        metadata[key] = _read_value(cur, vtype, key)
        value_types[key] = _TYPE_NAMES[vtype]

    alignment = DEFAULT_ALIGNMENT
    if "general.alignment" in metadata:
        if value_types["general.alignment"] != "UINT32":
            raise cur.fail(
                f"general.alignment must be UINT32, not {value_types['general.alignment']}", key="general.alignment"
            )
        alignment = int(metadata["general.alignment"])
        if alignment == 0 or alignment & (alignment - 1):
            raise cur.fail(f"alignment {alignment} is not a power of two", key="general.alignment")

    tensors: list[RawTensor] = []
    names: set[str] = set()
    dims_fmt = [cur.order + f"{n}q" for n in range(MAX_DIMS + 1)]
    type_offset = struct.Struct(cur.order + "IQ")
    for _ in range(n_tensors):
        start = cur.pos
        name = cur.string("tensor name", cap=65535)
        if len(name) > MAX_NAME_BYTES or len(name.encode()) > MAX_NAME_BYTES:
            raise cur.fail(f"tensor name {name[:80]!r} is longer than {MAX_NAME_BYTES} bytes", offset=start)
        if name in names:
            raise cur.fail(f"duplicate tensor name {name!r}", offset=start)
        names.add(name)
        n_dims = int(cur.unpack("I", what="tensor dimension count"))
        if n_dims > MAX_DIMS:
            raise cur.fail(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})", offset=cur.pos - 4)
        shape: tuple[int, ...] = struct.unpack(dims_fmt[n_dims], cur.take(8 * n_dims, what="tensor shape"))
        n_elements = 1
        for d in shape:
            if d < 0:
                raise cur.fail(f"tensor {name!r} has a negative dimension {shape}", offset=start)
            n_elements *= d
        if n_elements >= 2**63:
            raise cur.fail(f"tensor {name!r} shape {shape} overflows 64 bits", offset=start)
        type_at = cur.pos
        ggml_type, offset = type_offset.unpack(cur.take(12, what="tensor type and offset"))
        known = _GGML_TYPES.get(ggml_type)
        if known is None:
            raise cur.fail(f"tensor {name!r} has unknown GGML type {ggml_type}", offset=type_at)
        type_name, block, type_size = known
        if shape and shape[0] % block:
            raise cur.fail(
                f"tensor {name!r} of type {type_name} has rows of {shape[0]} elements, "
                f"not a multiple of its block size {block}",
                offset=type_at,
            )
        tensors.append(RawTensor(name, shape, ggml_type, offset, n_elements // block * type_size))

    data_offset = cur.pos if n_tensors == 0 else -(-cur.pos // alignment) * alignment
    expected = 0
    for t in tensors:
        if t.offset != expected:
            why = "misaligned" if t.offset % alignment else "out of sequence"
            raise GGUFError(
                f"{cur.path}: tensor {t.name!r} has data offset {t.offset}, expected {expected} ({why})",
                path=cur.path,
                offset=data_offset + t.offset if t.offset < 2**62 else None,
            )
        expected += -(-t.nbytes // alignment) * alignment
    data_bytes = expected
    size = source.size
    if size is not None and tensors:
        end = data_offset + tensors[-1].offset + tensors[-1].nbytes
        if end > size:
            raise GGUFError(
                f"{cur.path}: truncated: tensor data ends at byte {end} but the file has {size} bytes",
                path=cur.path,
                offset=size,
            )
    return GGUFHeader(
        path=cur.path,
        version=version,
        byte_order=cur.order,
        metadata=metadata,
        value_types=value_types,
        tensors=tuple(tensors),
        alignment=alignment,
        data_offset=data_offset,
        data_bytes=data_bytes,
        file_bytes=size if size is not None else data_offset + data_bytes,
    )


def read_headers(text: str, *, progress: Progress | None = None) -> tuple[tuple[GGUFHeader, ...], str]:
    """Resolve a source and read the header of every part; returns the headers and the Hub repo (or "")."""
    resolved = resolve_source(text)
    headers: list[GGUFHeader] = []
    done = 0

    for part in resolved.parts:

        def report(n: int, total: int | None, base: int = done) -> None:
            if progress is not None:
                progress(base + n, None)

        src = open_part(part, headers=resolved.headers, progress=report if resolved.remote else None)
        try:
            headers.append(read_header(src))
            if isinstance(src, HttpSource):
                done += src.bytes_fetched
        finally:
            src.close()
    return tuple(headers), resolved.repo


# --------------------------------------------------------------------------------------------
# From metadata to hyperparameters


def ftype_name(value: object) -> str:
    """``general.file_type`` as llama.cpp names it, without ``MOSTLY_``: 15 -> "Q4_K_M", 0 -> "F32"."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "unknown"
    try:
        name = ggufpy.LlamaFileType(value).name
    except ValueError:
        return "unknown"
    return {"ALL_F32": "F32"}.get(name, name.removeprefix("MOSTLY_"))


class _Meta:
    """Typed access to ``{arch}.*`` keys with llama.cpp's scalar-or-array rules."""

    def __init__(self, arch: str, metadata: Mapping[str, Any], path: str) -> None:
        self.arch, self.md, self.path = arch, metadata, path

    def key(self, suffix: str) -> str:
        return f"{self.arch}.{suffix}"

    def error(self, message: str, suffix: str) -> ModelError:
        return ModelError(f"{self.path}: {message}", architecture=self.arch, key=self.key(suffix))

    def number(self, suffix: str, default: float | None = None) -> float:
        value = self.md.get(self.key(suffix))
        if value is None:
            if default is None:
                raise self.error(f"required key {self.key(suffix)} is missing", suffix)
            return default
        if isinstance(value, GGUFArray | str):
            raise self.error(f"{self.key(suffix)} must be a number, not {value!r:.60}", suffix)
        return float(value)

    def integer(self, suffix: str, default: int | None = None) -> int:
        value = self.md.get(self.key(suffix))
        if value is None:
            if default is None:
                raise self.error(f"required key {self.key(suffix)} is missing", suffix)
            return default
        if isinstance(value, GGUFArray | str | float):
            raise self.error(f"{self.key(suffix)} must be an integer, not {value!r:.60}", suffix)
        if int(value) < 0:
            raise self.error(f"{self.key(suffix)} is negative ({value})", suffix)
        return int(value)

    def per_layer(self, suffix: str, n: int, default: tuple[int, ...] | int = 0) -> tuple[int, ...]:
        """llama.cpp's get_key_or_arr: an array of exactly n items, or a scalar repeated n times."""
        value = self.md.get(self.key(suffix))
        if value is None:
            return default if isinstance(default, tuple) else (default,) * n
        if isinstance(value, GGUFArray):
            if value.length != n:
                raise self.error(f"{self.key(suffix)} has {value.length} items, expected {n} (one per layer)", suffix)
            if value.values is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values):
                raise self.error(f"{self.key(suffix)} must be an array of integers", suffix)
            if any(v < 0 for v in value.values):
                raise self.error(f"{self.key(suffix)} has a negative item", suffix)
            return tuple(int(v) for v in value.values)
        return (self.integer(suffix),) * n


# arch -> (default pattern, dense_first, when): "always" uses the pattern; "if_window" only when
# sliding_window is present and > 0; "array" only from an explicit per-layer array.
_SWA_RULES: dict[str, tuple[int, bool, str]] = {
    "gemma2": (2, False, "always"),
    "gemma3": (6, False, "if_window"),
    "gemma3n": (5, False, "always"),
    "gemma-embedding": (6, False, "always"),
    "gemma4": (0, False, "array"),
    "cohere2": (4, False, "always"),
    "cohere2moe": (4, True, "always"),
    "exaone-moe": (4, False, "always"),
    "olmo2": (4, False, "if_window"),
    "gpt-oss": (2, False, "always"),
    "afmoe": (4, False, "if_window"),
    "mellum": (4, False, "if_window"),
    "smallthinker": (4, True, "if_window"),
    "modern-bert": (3, True, "if_window"),
    "plamo3": (8, False, "if_window"),
    "muse-glimmer": (4, False, "always"),
    "laguna": (4, True, "if_window"),
    "granite_swa": (0, False, "array"),
    "maple": (0, False, "array"),
    "mimo2": (0, False, "array"),
    "spark2_5": (0, False, "array"),
    "step35": (0, False, "array"),
    "dots3note": (0, False, "array"),
    "deepseek4": (0, False, "always"),
}
_SWA_DEFAULT_WINDOW = {"gemma2": 4096, "exaone4": 4096, "smallthinker": 4096, "llama4": 8192}


def _pattern_layers(n_pattern: int, dense_first: bool, n_layer: int, n_all: int) -> tuple[bool, ...]:
    """llama_hparams::set_swa_pattern: which of the first n_layer layers use the window; next-n layers never."""
    if dense_first:
        swa = [n_pattern == 0 or il % n_pattern != 0 for il in range(n_layer)]
    else:
        swa = [n_pattern == 0 or il % n_pattern < n_pattern - 1 for il in range(n_layer)]
    return tuple(swa + [False] * (n_all - n_layer))


def swa_layers(
    arch: str,
    metadata: Mapping[str, Any],
    n_layer: int,
    n_all: int,
    recurrent: Sequence[bool] = (),
    *,
    path: str = "<metadata>",
) -> tuple[int, tuple[bool, ...]]:
    """The sliding window size and the per-layer SWA flags llama.cpp derives for ``arch``."""
    m = _Meta(arch, metadata, path)
    window_key = f"{arch}.attention.sliding_window"
    found = window_key in metadata
    n_swa = m.integer("attention.sliding_window", _SWA_DEFAULT_WINDOW.get(arch, 0))
    none = (0, (False,) * n_all)
    pattern_value = metadata.get(f"{arch}.attention.sliding_window_pattern")

    def from_pattern(n_pattern: int, dense_first: bool) -> tuple[bool, ...]:
        if isinstance(pattern_value, GGUFArray):
            vals = pattern_value.values or ()
            flags = tuple(bool(v) for v in vals)[:n_all]
            return flags + (False,) * (n_all - len(flags))
        if pattern_value is not None and not isinstance(pattern_value, str | float):
            n_pattern = int(pattern_value)
        return _pattern_layers(n_pattern, dense_first, n_layer, n_all)

    if arch == "llama4":  # chunked attention unless the file disables it with sliding_window = 0
        if found and n_swa == 0:
            return none
        return 8192, from_pattern(4, False)
    if arch == "exaone4":
        if n_layer != 64:
            return none
        return n_swa, from_pattern(4, False)
    if arch in ("lfm2", "lfm2moe"):
        if not (found and n_swa > 0):
            return none
        rec = tuple(recurrent) + (False,) * (n_all - len(recurrent))
        return n_swa, tuple(not rec[i] if i < n_layer else False for i in range(n_all))
    rule = _SWA_RULES.get(arch)
    if rule is None:
        return none
    n_pattern, dense_first, when = rule
    if when == "if_window" and not (found and n_swa > 0):
        return none
    if when == "array" and not isinstance(pattern_value, GGUFArray):
        return none
    if arch == "smallthinker":
        n_swa = 4096
    return n_swa, from_pattern(n_pattern, dense_first)


_RECURRENT_PARTS = ("ssm_", "time_mix", "shortconv")
_DENSE_FFN_PARTS = ("ffn_up", "ffn_down", "ffn_gate", "ffn_gate_up")


def _leaf(name: str) -> str:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[0] == "blk" else parts[0]


def spec_from_headers(headers: Sequence[GGUFHeader], *, source: str = "", gguf_repo: str = "") -> ModelSpec:
    """Build a ModelSpec from the header of every part of one model (split parts in order)."""
    if not headers:
        raise SourceError(f"{source}: no GGUF header to read", path=source)
    first = headers[0]
    path = first.path
    md = first.metadata
    arch = md.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelError(f"{path}: general.architecture is missing", key="general.architecture")
    _check_split(headers)

    tensors: list[TensorInfo] = []
    seen: dict[str, str] = {}
    for split, h in enumerate(headers):
        for raw in h.tensors:
            if raw.name in seen:
                raise GGUFError(
                    f"{h.path}: duplicate tensor name {raw.name!r} (also in {seen[raw.name]})",
                    path=h.path,
                    key=raw.name,
                )
            seen[raw.name] = h.path
            tensors.append(
                TensorInfo(
                    name=raw.name,
                    shape=raw.shape,
                    ggml_type=_GGML_TYPES[raw.ggml_type][0],
                    nbytes=raw.nbytes,
                    layer=layer_index_of(raw.name),
                    role=role_of(raw.name),
                    offset=raw.offset,
                    split=split,
                )
            )

    m = _Meta(arch, md, path)
    n_all = m.integer("block_count")
    if n_all < 1 or n_all > MAX_LAYERS:
        raise m.error(f"{m.key('block_count')} is {n_all}, expected 1 to {MAX_LAYERS}", "block_count")
    n_nextn = m.integer("nextn_predict_layers", 0)
    if n_nextn > n_all:
        raise m.error(f"{n_nextn} next-n layers but only {n_all} blocks", "nextn_predict_layers")
    n_layer = n_all - n_nextn
    for t in tensors:
        if t.layer is not None and t.layer >= n_all:
            raise m.error(f"tensor {t.name!r} is in layer {t.layer} but block_count is {n_all}", "block_count")

    n_embd = m.integer("embedding_length")
    n_head = m.per_layer("attention.head_count", n_all)
    n_head_kv = m.per_layer("attention.head_count_kv", n_all, n_head)
    n_ff = m.per_layer("feed_forward_length", n_all)
    if n_head[0] > 0:
        head_k = m.integer("attention.key_length", n_embd // n_head[0])
        head_v = m.integer("attention.value_length", n_embd // n_head[0])
    else:
        head_k = head_v = 0

    # layer contents, from the tensors actually present
    attention, recurrent, moe, dense, qk = ([False] * n_all for _ in range(5))
    for t in tensors:
        il = t.layer
        if il is None:
            continue
        leaf = _leaf(t.name)
        if t.role is TensorRole.ATTENTION:
            attention[il] = True
            if leaf in ("attn_q", "attn_k"):
                qk[il] = True
        elif t.role is TensorRole.ROUTED_EXPERTS:
            moe[il] = True
        elif leaf in _DENSE_FFN_PARTS:
            dense[il] = True
        elif leaf.startswith(_RECURRENT_PARTS):
            recurrent[il] = True
    # a recurrent layer is also an attention layer only with its own Q/K projections (Falcon-H1); the
    # fused attn_qkv / attn_gate of Qwen3-Next's gated delta net feed the recurrence, not a KV cache
    attention = [a and (qk[i] or not recurrent[i]) for i, a in enumerate(attention)]
    if not tensors:  # a header without tensors (e.g. a vocab-only file): trust the metadata
        attention = [kv > 0 for kv in n_head_kv]
    # llama.cpp allocates KV only on attention layers: a layer without attention tensors has none
    n_head_kv = tuple(kv if has else 0 for kv, has in zip(n_head_kv, attention, strict=True))

    n_swa, swa = swa_layers(arch, md, n_layer, n_all, recurrent, path=path)
    expert_used = m.per_layer("expert_used_count", n_all)
    n_ff_exp = m.per_layer("expert_feed_forward_length", n_all)
    n_vocab = _vocab_size(md, m, tensors)

    hparams = Hparams(
        n_layer=n_all,
        n_embd=n_embd,
        n_vocab=n_vocab,
        n_ctx_train=m.integer("context_length", 0),
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_embd_head_k=head_k,
        n_embd_head_v=head_v,
        n_ff=n_ff,
        n_expert=m.integer("expert_count", 0),
        n_expert_used=max(expert_used),
        n_expert_shared=m.integer("expert_shared_count", 0),
        n_ff_exp=max(n_ff_exp) or (_dim_of(tensors, ("ffn_up_exps", "ffn_gate_exps"), 1) if any(moe) else 0),
        n_ff_shexp=m.integer("expert_shared_feed_forward_length", 0)
        or (_dim_of(tensors, ("ffn_up_shexp",), 1) if any(moe) else 0),
        moe_latent_size=m.integer("moe_latent_size", 0),
        n_layer_dense_lead=m.integer("leading_dense_block_count", 0),
        kv_lora_rank=m.integer("attention.kv_lora_rank", 0),
        n_embd_head_k_mla=m.integer("attention.key_length_mla", 0),
        n_embd_head_v_mla=m.integer("attention.value_length_mla", 0),
        ssm_d_conv=m.integer("ssm.conv_kernel", 0),
        ssm_d_inner=m.integer("ssm.inner_size", 0),
        ssm_d_state=m.integer("ssm.state_size", 0),
        ssm_n_group=m.integer("ssm.group_count", 0),
        ssm_dt_rank=m.integer("ssm.time_step_rank", 0),
        recurrent=tuple(recurrent),
        n_swa=n_swa if any(swa) else 0,
        swa_layers=swa,
        n_nextn_layer=n_nextn,
        rope_freq_base=m.number("rope.freq_base", 10000.0),
        n_embd_head_k_swa=m.integer("attention.key_length_swa", 0),
        n_embd_head_v_swa=m.integer("attention.value_length_swa", 0),
    )
    layers = tuple(
        LayerInfo(
            index=i,
            has_attention=attention[i],
            has_recurrent=recurrent[i],
            has_moe=moe[i],
            has_dense_ffn=dense[i],
            sliding_window=swa[i] and attention[i],
            is_nextn=i >= n_layer,
        )
        for i in range(n_all)
    )
    name = md.get("general.name")
    return ModelSpec(
        architecture=arch,
        name=name if isinstance(name, str) and name else PurePosixPath(path).name,
        hparams=hparams,
        layers=layers,
        tensors=tuple(tensors),
        ftype=ftype_name(md.get("general.file_type")),
        file_bytes=sum(h.file_bytes for h in headers),
        metadata=dict(md),
        source=source or path,
        gguf_repo=gguf_repo,
    )


def _dim_of(tensors: Sequence[TensorInfo], leafs: tuple[str, ...], axis: int) -> int:
    """A size read off the first tensor with one of these names (the metadata did not give it)."""
    for t in tensors:
        if t.layer is not None and _leaf(t.name) in leafs and len(t.shape) > axis:
            return t.shape[axis]
    return 0


def _vocab_size(md: Mapping[str, Any], m: _Meta, tensors: Sequence[TensorInfo]) -> int:
    tokens = md.get("tokenizer.ggml.tokens")
    if isinstance(tokens, GGUFArray) and tokens.length:
        return tokens.length
    size = m.integer("vocab_size", 0)
    if size:
        return size
    for t in tensors:
        if t.name == "token_embd.weight" and len(t.shape) >= 2:
            return t.shape[1]
    return 0


def _check_split(headers: Sequence[GGUFHeader]) -> None:
    count = len(headers)
    for i, h in enumerate(headers):
        declared = h.metadata.get("split.count")
        if declared is not None and (not isinstance(declared, int) or declared != count):
            raise GGUFError(
                f"{h.path}: split.count is {declared!r:.40} but the model has {count} part(s)",
                path=h.path,
                key="split.count",
            )
        no = h.metadata.get("split.no")
        if no is not None and count > 1 and (not isinstance(no, int) or no != i):
            raise GGUFError(f"{h.path}: split.no is {no!r:.40}, expected {i}", path=h.path, key="split.no")


def read_model_spec(source: str, *, progress: Callable[[int, int | None], None] | None = None) -> ModelSpec:
    """Read any GGUF source (path, split first part, URL, hf://..., owner/repo:QUANT) into a ModelSpec.

    ``progress(bytes_read, total_or_None)`` is called while a remote header is fetched.
    """
    headers, repo = read_headers(source, progress=progress)
    return spec_from_headers(headers, source=source, gguf_repo=repo)
