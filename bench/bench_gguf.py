"""GGUF header reading: bytes and requests for a remote file, and time for a 10,000-tensor header.

Remote: synthetic models with headers from a few KB to several MB (the tokenizer arrays dominate
real headers: 150k tokens and 150k merges is ~5 MB) are served by a local HTTP server with Range
support that counts requests and body bytes. The goal is at most the header plus one read chunk,
in at most 4 requests for a single file. Local: a header with 10,000 tensor infos, best of 5.

Run ``python bench/bench_gguf.py`` (or ``python -m bench``); prints one line per figure and exits
1 when a goal is missed.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "src", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import synth  # noqa: E402
from httpserver import serve  # noqa: E402
from servefit.gguf import read_header, read_model_spec  # noqa: E402
from servefit.sources import CHUNK_GROWTH, FIRST_CHUNK_BYTES, LocalSource  # noqa: E402

REAL_HEADER = (
    Path.home() / ".cache/servefit/src/llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf"
)


def _header_bytes(path: Path) -> int:
    src = LocalSource(path)
    try:
        return read_header(src).data_offset
    finally:
        src.close()


def _vocab_model(folder: Path, n_tokens: int, *, merges: bool) -> Path:
    meta: dict[str, object] = {"tokenizer.ggml.tokens": [f"tok{i:07d}" + "ab" * 4 for i in range(n_tokens)]}
    if merges:
        meta["tokenizer.ggml.merges"] = [f"t{i} m{i + 1}" + "c" * 8 for i in range(n_tokens)]
    # F16 and a narrow embedding keep the file small; the header is what is measured
    return synth.make_model(
        folder / f"vocab{n_tokens}.gguf",
        "llama",
        n_vocab=n_tokens,
        extra_metadata=meta,
        dtype=synth.F16,
        n_embd=64,
        n_head=1,
        n_head_kv=1,
        n_ff=64,
    )


def bench_remote(folder: Path) -> bool:
    ok = True
    cases = [
        ("llama, no tokenizer", synth.make_model(folder / "small.gguf", "llama")),
        ("32k tokens", _vocab_model(folder, 32_000, merges=False)),
        ("150k tokens + 150k merges", _vocab_model(folder, 150_000, merges=True)),
    ]
    real = REAL_HEADER
    if real.is_file():  # a real header: llama.cpp's Gemma 4 vocabulary file (262,144 tokens)
        cases.append((f"real {real.name}", real))
    with serve() as server:
        for label, path in cases:
            header = _header_bytes(path)
            url = server.add_file(f"/{path.name}", path)
            server.reset_counts()
            start = time.perf_counter()
            read_model_spec(url)
            elapsed = time.perf_counter() - start
            last_chunk = FIRST_CHUNK_BYTES * CHUNK_GROWTH ** (server.requests - 1)
            within = server.body_bytes <= header + last_chunk and server.requests <= 4
            ok &= within
            print(
                f"remote {label}: header {header:,} B, file {path.stat().st_size:,} B -> "
                f"{server.requests} request(s), {server.body_bytes:,} B read "
                f"({server.body_bytes / header:.1f}x header; header + one chunk = {header + last_chunk:,} B) "
                f"in {elapsed * 1000:.0f} ms [{'ok' if within else 'MISSED'}]"
            )
        first = synth.make_model(folder / "split.gguf", "qwen3moe", split_max_tensors=10)
        parts = sorted(folder.glob("split-*-of-*.gguf"))
        for p in parts:
            server.add_file(f"/{p.name}", p)
        server.reset_counts()
        read_model_spec(f"{server.base_url}/{first.name}")
        header = sum(_header_bytes(p) for p in parts)
        print(
            f"remote split model, {len(parts)} parts: {server.requests} requests, {server.body_bytes:,} B read "
            f"(headers {header:,} B; one request per part)"
        )
        ok &= server.requests == len(parts)
    return ok


def bench_local_10k(folder: Path) -> bool:
    n_layer, per_layer = 1000, 10
    meta = {
        "llama.block_count": n_layer,
        "llama.embedding_length": 32,
        "llama.context_length": 4096,
        "llama.attention.head_count": 1,
    }
    leafs = (
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_norm",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
        "x",
    )
    tensors = [(f"blk.{i}.{leaf}.weight", (32,)) for i in range(n_layer) for leaf in leafs[:per_layer]]
    path = synth.write_gguf(folder / "10k.gguf", "llama", meta, tensors, zeros=True)
    header = _header_bytes(path)
    best_header = best_spec = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        src = LocalSource(path)
        try:
            read_header(src)
        finally:
            src.close()
        best_header = min(best_header, time.perf_counter() - start)
        start = time.perf_counter()
        spec = read_model_spec(str(path))
        best_spec = min(best_spec, time.perf_counter() - start)
    assert len(spec.tensors) == 10_000
    print(
        f"local header with 10,000 tensors ({header:,} B): parse {best_header * 1000:.1f} ms, "
        f"full ModelSpec {best_spec * 1000:.1f} ms (best of 5)"
    )
    return True


def main(argv: list[str] | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        folder = Path(tmp)
        ok = bench_remote(folder)
        ok &= bench_local_10k(folder)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
