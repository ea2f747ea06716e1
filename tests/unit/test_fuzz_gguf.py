"""Fuzz the GGUF reader with mutated valid headers: it returns a header or raises one ServefitError.

Bounded for CI: a fixed number of examples, each with a deadline, over a header of ~2 KB.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import synth
from servefit.errors import ServefitError
from servefit.gguf import read_header, spec_from_headers
from servefit.sources import BytesSource, LocalSource


@pytest.fixture(scope="module")
def header(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = synth.make_model(tmp_path_factory.mktemp("fuzz") / "m.gguf", "qwen3moe", n_layer=1, n_vocab=64)
    src = LocalSource(Path(path))
    try:
        end = read_header(src).data_offset
    finally:
        src.close()
    # the header and a little data: tensor data sizes are then checked against a short file
    return Path(path).read_bytes()[: end + 256]


_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF]
_WORDS = [0, 1, 4, 5, 13, 2**31, 2**32 - 1, 2**40, 2**63, 2**64 - 1]

mutation = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, 10**6), st.sampled_from(_INTERESTING) | st.integers(0, 255)),
    st.tuples(st.just("u64"), st.integers(0, 10**6), st.sampled_from(_WORDS)),
    st.tuples(st.just("u32"), st.integers(0, 10**6), st.sampled_from(_WORDS[:7])),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 16)),
)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in ops:
        if not buf:
            break
        at = where % len(buf)
        if kind == "byte":
            buf[at] = value
        elif kind == "u64":
            buf[at : at + 8] = struct.pack("<Q", value % 2**64)
        elif kind == "u32":
            buf[at : at + 4] = struct.pack("<I", value % 2**32)
        elif kind == "cut":
            del buf[at:]
        elif kind == "insert":
            buf.insert(at, value)
        else:
            del buf[at : at + value]
    return bytes(buf)


@settings(
    max_examples=int(os.environ.get("SERVEFIT_FUZZ_EXAMPLES", "300")),
    deadline=1000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_headers_fail_cleanly(header: bytes, ops: list[tuple[str, int, int]]) -> None:
    data = _mutate(header, ops)
    try:
        parsed = read_header(BytesSource(data, "fuzz.gguf"))
        spec_from_headers([parsed], source="fuzz.gguf")
    except ServefitError as exc:
        message = str(exc)
        assert message and "\n" not in message
        assert message.startswith("fuzz.gguf")
