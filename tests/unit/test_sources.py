"""Remote GGUF reading against a local HTTP server and a fake Hugging Face Hub on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import synth
from httpserver import FakeServer, serve
from servefit import sources
from servefit.errors import MissingSplitError, RemoteError, SourceError
from servefit.gguf import read_header, read_model_spec
from servefit.sources import (
    CHUNK_GROWTH,
    FIRST_CHUNK_BYTES,
    HttpSource,
    LocalSource,
    looks_like_gguf_source,
    split_parts,
)

Factory = Callable[..., Path]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    with serve() as state:
        monkeypatch.setenv("HF_ENDPOINT", state.base_url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        yield state


def _header_bytes(path: Path) -> int:
    src = LocalSource(path)
    try:
        return read_header(src).data_offset
    finally:
        src.close()


def _same(a: object, b: object) -> None:
    from servefit.model import ModelSpec

    assert isinstance(a, ModelSpec) and isinstance(b, ModelSpec)
    assert a.tensors == b.tensors
    assert a.hparams == b.hparams
    assert a.file_bytes == b.file_bytes
    assert a.ftype == b.ftype


def test_remote_file_reads_only_the_header(server: FakeServer, synth_model: Factory) -> None:
    path = synth_model("qwen3moe")
    url = server.add_file("/models/qwen3moe.gguf", path)
    _same(read_model_spec(url), read_model_spec(str(path)))
    assert server.requests == 1
    assert server.body_bytes <= FIRST_CHUNK_BYTES < path.stat().st_size


def test_large_header_grows_chunks(server: FakeServer, tmp_path: Path) -> None:
    tokens = [f"token-{i:06d}-" + "x" * 20 for i in range(60_000)]  # ~2 MiB of tokenizer strings
    path = synth.make_model(
        tmp_path / "big.gguf", "llama", n_vocab=len(tokens), extra_metadata={"tokenizer.ggml.tokens": tokens}
    )
    header = _header_bytes(path)
    assert header > 2 * FIRST_CHUNK_BYTES
    url = server.add_file("/big.gguf", path)
    seen: list[int] = []
    spec = read_model_spec(url, progress=lambda done, total: seen.append(done))
    assert spec.hparams.n_vocab == len(tokens)
    assert server.requests <= 4
    last_chunk = FIRST_CHUNK_BYTES * CHUNK_GROWTH ** (server.requests - 1)
    assert server.body_bytes <= header + last_chunk
    assert seen and seen == sorted(seen) and seen[-1] == server.body_bytes


def test_remote_split_model(server: FakeServer, tmp_path: Path) -> None:
    first = synth.make_model(tmp_path / "llama.gguf", "llama", split_max_tensors=8)
    for p in sorted(tmp_path.glob("llama-*-of-*.gguf")):
        server.add_file(f"/split/{p.name}", p)
    spec = read_model_spec(f"{server.base_url}/split/{first.name}")
    _same(spec, read_model_spec(str(first)))
    assert server.requests == 3


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("404", r"HTTP 404 \(not found\)"),
        ("500", r"HTTP 500"),
        ("416", r"416 Range Not Satisfiable"),
        ("no-range", r"server ignores HTTP Range requests"),
        ("close-early", r"closed early|connection failed"),
        ("no-content-range", r"partial answer without a valid Content-Range"),
    ],
)
def test_misbehaving_server(server: FakeServer, synth_model: Factory, mode: str, match: str) -> None:
    url = server.add_file("/m.gguf", synth_model("llama"))
    server.mode = mode
    with pytest.raises(RemoteError, match=match) as info:
        read_model_spec(url)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(url)


def test_stalled_server_times_out(server: FakeServer, synth_model: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    monkeypatch.setattr(sources, "HTTP_TIMEOUT", httpx.Timeout(0.5))
    url = server.add_file("/m.gguf", synth_model("llama"))
    server.mode = "stall"
    with pytest.raises(RemoteError, match="timed out"):
        read_model_spec(url)


def test_remote_header_size_is_capped(
    server: FakeServer, synth_model: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MAX_REMOTE_HEADER_BYTES", 1000)
    url = server.add_file("/m.gguf", synth_model("llama"))
    src = HttpSource(url, first_chunk_bytes=256)
    try:
        assert src.read(0, 4) == b"GGUF"
        with pytest.raises(RemoteError, match="header larger than 1,000 bytes"):
            src.read(900, 200)
    finally:
        src.close()


def test_small_file_sent_whole_is_accepted(server: FakeServer, tmp_path: Path) -> None:
    path = synth.write_gguf(tmp_path / "tiny.gguf", "llama", {"llama.block_count": 1, "llama.embedding_length": 8}, [])
    url = server.add_file("/tiny.gguf", path)
    server.mode = "no-range"
    assert read_model_spec(url).file_bytes == path.stat().st_size


def test_split_model_at_the_server_root(server: FakeServer, tmp_path: Path) -> None:
    first = synth.make_model(tmp_path / "m.gguf", "llama", split_max_tensors=10)
    for p in sorted(tmp_path.glob("m-*-of-*.gguf")):
        server.add_file(f"/{p.name}", p)
    assert len(read_model_spec(f"{server.base_url}/{first.name}").tensors) == 21


def test_invalid_url() -> None:
    with pytest.raises(RemoteError, match="invalid URL"):
        read_model_spec("http://127.0.0.1:notaport/m.gguf")


def test_connection_refused(tmp_path: Path) -> None:
    with serve() as state:
        url = state.base_url + "/gone.gguf"
    with pytest.raises(RemoteError, match="connection failed"):
        read_model_spec(url)


def test_http_source_counts(server: FakeServer, synth_model: Factory) -> None:
    url = server.add_file("/m.gguf", synth_model("llama"))
    src = HttpSource(url, first_chunk_bytes=1024)
    try:
        assert src.read(0, 4) == b"GGUF"
        assert src.read(1000, 100) == synth_model("llama").read_bytes()[1000:1100]
        assert (src.requests, src.bytes_fetched) == (2, 1024 + 4096)
        assert src.size == synth_model("llama").stat().st_size
    finally:
        src.close()


# ----------------------------------------------------------------------------- Hugging Face


def _repo(server: FakeServer, tmp_path: Path) -> dict[str, Path]:
    q8 = synth.make_model(tmp_path / "q8.gguf", "llama", n_layer=1)
    q4 = synth.make_model(tmp_path / "q4.gguf", "gemma3", n_layer=2)
    split_first = synth.make_model(tmp_path / "big.gguf", "qwen3moe", split_max_tensors=10)
    parts = sorted(tmp_path.glob("big-*-of-*.gguf"))
    files = {
        "README.md": b"# model",
        "Model-Q8_0.gguf": q8.read_bytes(),
        "Model-Q4_K_M.gguf": q4.read_bytes(),
        "mmproj-Model-Q4_K_M.gguf": b"not a model",
    }
    for i, p in enumerate(parts, 1):
        files[f"Q6_K/Model-Q6_K-{i:05d}-of-{len(parts):05d}.gguf"] = p.read_bytes()
    server.repos["acme/Model-GGUF"] = files
    return {"Q8_0": q8, "Q4_K_M": q4, "Q6_K": split_first}


def test_hub_repo_quant(server: FakeServer, tmp_path: Path) -> None:
    local = _repo(server, tmp_path)
    spec = read_model_spec("acme/Model-GGUF:Q4_K_M")
    _same(spec, read_model_spec(str(local["Q4_K_M"])))
    assert spec.gguf_repo == "acme/Model-GGUF"
    assert spec.source == "acme/Model-GGUF:Q4_K_M"
    assert any("/api/models/acme/Model-GGUF/tree/main" in p for p in server.paths)
    assert read_model_spec("acme/Model-GGUF:q8_0").architecture == "llama"


def test_hub_repo_quant_split(server: FakeServer, tmp_path: Path) -> None:
    local = _repo(server, tmp_path)
    server.page_size = 2  # the listing is paginated
    spec = read_model_spec("acme/Model-GGUF:Q6_K")
    _same(spec, read_model_spec(str(local["Q6_K"])))
    assert max(t.split for t in spec.tensors) == 2


def test_hub_missing_quant_lists_available(server: FakeServer, tmp_path: Path) -> None:
    _repo(server, tmp_path)
    with pytest.raises(
        SourceError, match=r"no GGUF file for IQ2_XXS in acme/Model-GGUF; available: Q4_K_M, Q6_K, Q8_0"
    ):
        read_model_spec("acme/Model-GGUF:IQ2_XXS")


def test_hub_missing_split_part(server: FakeServer, tmp_path: Path) -> None:
    _repo(server, tmp_path)
    del server.repos["acme/Model-GGUF"]["Q6_K/Model-Q6_K-00002-of-00003.gguf"]
    with pytest.raises(MissingSplitError, match=r"Model-Q6_K-00002-of-00003\.gguf is missing from acme/Model-GGUF"):
        read_model_spec("acme/Model-GGUF:Q6_K")


def test_hub_unknown_repo(server: FakeServer) -> None:
    with pytest.raises(RemoteError, match=r"HTTP 404"):
        read_model_spec("acme/nothing:Q4_K_M")


def test_hf_url_and_token(server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = _repo(server, tmp_path)
    server.token = "secret"
    with pytest.raises(RemoteError, match=r"HTTP 401 \(unauthorized: set HF_TOKEN"):
        read_model_spec("hf://acme/Model-GGUF/Model-Q8_0.gguf")
    monkeypatch.setenv("HF_TOKEN", "secret")
    server.reset_counts()
    spec = read_model_spec("hf://acme/Model-GGUF/Model-Q8_0.gguf")
    _same(spec, read_model_spec(str(local["Q8_0"])))
    assert "Bearer secret" in server.auth_headers
    split = read_model_spec("hf://acme/Model-GGUF/Q6_K/Model-Q6_K-00001-of-00003.gguf")
    _same(split, read_model_spec(str(local["Q6_K"])))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model.gguf", True),
        ("/data/Model-Q4_K_M-00001-of-00003.GGUF", True),
        ("https://example.com/x.gguf", True),
        ("hf://owner/repo/x.gguf", True),
        ("unsloth/Nemotron-3-Super-GGUF:Q4_K_S", True),
        ("nemotron-3-super-120b-a12b", False),
        ("scaleway/l4-2-24g", False),
        ("config.json", False),
    ],
)
def test_looks_like_gguf_source(text: str, expected: bool) -> None:
    assert looks_like_gguf_source(text) is expected


def test_split_parts() -> None:
    assert split_parts("a/M-Q4-00002-of-00003.gguf") == (
        "a/M-Q4-00001-of-00003.gguf",
        "a/M-Q4-00002-of-00003.gguf",
        "a/M-Q4-00003-of-00003.gguf",
    )
    assert split_parts("model.gguf") is None
    with pytest.raises(SourceError, match="invalid split name"):
        split_parts("m-00004-of-00003.gguf")


def test_not_a_source() -> None:
    with pytest.raises(SourceError, match="not a GGUF source"):
        read_model_spec("some/thing/else")
    with pytest.raises(SourceError, match="hf://owner/repo"):
        read_model_spec("hf://nope")
