"""Hostile GGUF headers built in a few bytes: each ends in one precise GGUFError, fast, in little memory."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest

import synth
from servefit.errors import GGUFError, ServefitError
from servefit.gguf import read_header, read_model_spec
from servefit.sources import BytesSource, LocalSource

U8, U32, I32, F32, BOOL, STR, ARR, U64 = 0, 4, 5, 6, 7, 8, 9, 10


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def tinfo(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        s(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<q", d) for d in dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def gguf(n_tensors: int, n_kv: int, body: bytes = b"", *, version: int = 3, pad: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + body + b"\0" * pad


ARCH = kv("general.architecture", STR, s("llama"))


def _reject(tmp_path: Path, data: bytes, match: str) -> GGUFError:
    path = tmp_path / "hostile.gguf"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(GGUFError, match=match) as info:
            read_model_spec(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {len(data)}-byte file"
    return info.value


CASES = [
    pytest.param(b"", r"not a GGUF file \(only 0 bytes\) at offset 0", id="empty"),
    pytest.param(b"GGU", r"not a GGUF file \(only 3 bytes\)", id="three-bytes"),
    pytest.param(b"PK\x03\x04" + b"\0" * 40, r"not a GGUF file \(magic b'PK\\x03\\x04'\) at offset 0", id="zip"),
    pytest.param(gguf(0, 0, version=1), r"GGUF version 1 is not supported .* at offset 4", id="v1"),
    pytest.param(gguf(0, 0, version=4), r"unsupported GGUF version 4 .* at offset 4", id="v4"),
    pytest.param(gguf(2**60, 0), r"tensor count is 1152921504606846976, more than the limit", id="tensors-2^60"),
    pytest.param(
        gguf(1000, 0, pad=100),
        r"tensor count is 1000 but only 108 bytes remain \(need at least 25000\) at offset 8",
        id="tensors-vs-size",
    ),
    pytest.param(gguf(0, 2**62), r"metadata count is 4611686018427387904, more than the limit", id="kv-2^62"),
    pytest.param(
        gguf(0, 1, s("k") + struct.pack("<I", STR) + struct.pack("<Q", 2**40)),
        r"string value length 1099511627776 exceeds the limit .* \(key 'k'\)",
        id="string-2^40",
    ),
    pytest.param(
        gguf(0, 1, s("k") + struct.pack("<I", STR) + struct.pack("<Q", 5000) + b"x" * 10),
        r"string value length 5000 exceeds the 10 bytes left in the file at offset 37 \(key 'k'\)",
        id="string-longer-than-file",
    ),
    pytest.param(
        gguf(0, 1, s("k") + struct.pack("<I", 13) + b"\0" * 8), r"unknown value type 13 .*key 'k'", id="vtype"
    ),
    pytest.param(
        gguf(0, 1, kv("k", ARR, struct.pack("<IQ", 99, 1) + b"\0" * 8)),
        r"unknown array item type 99 .*key 'k'",
        id="array-item-type",
    ),
    pytest.param(
        gguf(0, 1, kv("k", ARR, struct.pack("<IQ", U8, 2**40))),
        r"array length is 1099511627776, more than the limit",
        id="array-2^40",
    ),
    pytest.param(
        gguf(0, 1, kv("k", ARR, struct.pack("<IQ", U32, 10**6) + b"\0" * 64)),
        r"array length is 1000000 but only 64 bytes remain",
        id="array-longer-than-file",
    ),
    pytest.param(
        gguf(0, 1, kv("k", ARR, struct.pack("<IQ", ARR, 1) * 5 + struct.pack("<IQ", U8, 0))),
        r"arrays nested deeper than 4",
        id="array-depth",
    ),
    pytest.param(gguf(0, 2, ARCH + ARCH), r"duplicate metadata key 'general.architecture'", id="duplicate-key"),
    pytest.param(gguf(0, 1, kv("", U32, b"\0" * 4)), r"metadata entry 0 has an empty key", id="empty-key"),
    pytest.param(
        gguf(0, 1, kv("general.alignment", U32, struct.pack("<I", 24))),
        r"alignment 24 is not a power of two",
        id="alignment",
    ),
    pytest.param(
        gguf(0, 1, kv("general.alignment", I32, struct.pack("<i", 32))),
        r"general.alignment must be UINT32, not INT32",
        id="alignment-type",
    ),
    pytest.param(
        gguf(1, 1, ARCH + tinfo("t", (1, 1, 1, 1, 1)), pad=64),
        r"tensor 't' has 5 dimensions \(at most 4\)",
        id="five-dims",
    ),
    pytest.param(gguf(1, 1, ARCH + tinfo("t", (-4,)), pad=64), r"tensor 't' has a negative dimension", id="neg-dim"),
    pytest.param(
        gguf(1, 1, ARCH + tinfo("t", (2**62, 2**62)), pad=64), r"tensor 't' shape .* overflows 64 bits", id="overflow"
    ),
    pytest.param(gguf(1, 1, ARCH + tinfo("t", (32,), 99), pad=64), r"unknown GGML type 99", id="ggml-type"),
    pytest.param(
        gguf(1, 1, ARCH + tinfo("t", (33,), 12), pad=64),
        r"tensor 't' of type Q4_K has rows of 33 elements, not a multiple of its block size 256",
        id="block-size",
    ),
    pytest.param(
        gguf(2, 1, ARCH + tinfo("t", (8,)) + tinfo("t", (8,), offset=32), pad=128),
        r"duplicate tensor name 't'",
        id="duplicate-tensor",
    ),
    pytest.param(
        gguf(1, 1, ARCH + tinfo("t", (8,), offset=2**64 - 1), pad=128),
        r"tensor 't' has data offset 18446744073709551615, expected 0",
        id="offset-overflow",
    ),
    pytest.param(
        gguf(2, 1, ARCH + tinfo("a", (8,)) + tinfo("b", (8,), offset=33), pad=128),
        r"tensor 'b' has data offset 33, expected 32 \(misaligned\)",
        id="misaligned",
    ),
    pytest.param(
        gguf(1, 1, ARCH + tinfo("t", (1024, 1024)), pad=64),
        r"truncated: tensor data ends at byte \d+ but the file has \d+ bytes",
        id="data-beyond-eof",
    ),
    pytest.param(
        gguf(1, 1, ARCH + tinfo("x" * 80, (8,)), pad=64), r"tensor name 'x+' is longer than 63 bytes", id="long-name"
    ),
]


@pytest.mark.parametrize(("data", "match"), CASES)
def test_hostile_header_is_rejected(tmp_path: Path, data: bytes, match: str) -> None:
    _reject(tmp_path, data, match)


def test_error_carries_offset_and_key(tmp_path: Path) -> None:
    err = _reject(tmp_path, gguf(0, 1, s("k") + struct.pack("<I", 13) + b"\0" * 8), "unknown value type")
    assert err.key == "k"
    assert err.offset == 33  # 24-byte preamble, then the key (8 + 1 bytes), then its type


def test_truncated_at_every_byte(tmp_path: Path) -> None:
    """Every prefix of a real header fails with a GGUFError, never another exception."""
    full = synth.make_model(tmp_path / "full.gguf", "gemma3", n_layer=2)
    source = LocalSource(full)
    try:
        header_end = read_header(source).data_offset
    finally:
        source.close()
    data = full.read_bytes()
    for n in range(header_end + 1):
        with pytest.raises(GGUFError):
            read_header(BytesSource(data[:n], "cut.gguf"))
    # truncated inside the tensor data: the header is fine but the data is not all there
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 1])
    with pytest.raises(GGUFError, match="truncated: tensor data ends at byte"):
        read_model_spec(str(cut))


def test_metadata_type_errors_are_model_errors(tmp_path: Path) -> None:
    meta, tensors = synth.model_layout("llama")
    meta["llama.block_count"] = "two"
    path = synth.write_gguf(tmp_path / "x.gguf", "llama", meta, tensors)
    with pytest.raises(ServefitError, match=r"llama\.block_count must be an integer"):
        read_model_spec(str(path))
