"""The synthetic models load, run and quantize in llama.cpp, and llama.cpp agrees with our reader.

llama.cpp (llama-cpp-python 0.3.36) is the ground truth: its loader refuses a missing key, a wrong
shape or an extra tensor, so a model that loads has the real structure. Its own counts
(``llama_model_n_params``, ``llama_model_size``, ``llama_model_n_swa``, recurrent/hybrid flags)
are compared with ``read_model_spec``.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import synth
from servefit.gguf import read_model_spec

pytestmark = pytest.mark.llama

llama_cpp: Any = pytest.importorskip("llama_cpp")


_LOG: list[str] = []


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _capture(level: int, text: bytes, user_data: Any) -> None:
    _LOG.append(text.decode(errors="replace"))


@pytest.fixture(scope="module", autouse=True)
def _backend() -> Iterator[None]:
    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(_capture, ctypes.c_void_p(0))
    yield


def _load(path: Path) -> Any:
    params = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    assert model, f"llama.cpp refused to load {path.name}"
    return model


def _run_one_token(model: Any) -> None:
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = 256
    cparams.n_batch = 8
    cparams.n_ubatch = 8
    cparams.n_threads = 1
    cparams.n_threads_batch = 1
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    assert ctx, "llama.cpp could not create a context"
    try:
        tokens = (llama_cpp.llama_token * 2)(1, 2)
        batch = llama_cpp.llama_batch_get_one(tokens, 2)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        logits = llama_cpp.llama_get_logits(ctx)
        assert logits
    finally:
        llama_cpp.llama_free(ctx)


def _check_agrees(model: Any, path: Path) -> None:
    spec = read_model_spec(str(path))
    assert llama_cpp.llama_model_n_params(model) == spec.parameters
    assert llama_cpp.llama_model_size(model) == spec.tensor_bytes
    assert llama_cpp.llama_model_n_layer(model) == spec.hparams.n_layer - spec.hparams.n_nextn_layer
    assert llama_cpp.llama_model_n_embd(model) == spec.hparams.n_embd
    assert llama_cpp.llama_model_n_ctx_train(model) == spec.hparams.n_ctx_train
    assert llama_cpp.llama_model_n_swa(model) == spec.hparams.n_swa
    assert bool(llama_cpp.llama_model_is_recurrent(model)) == all(spec.hparams.recurrent)
    buf = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_meta_val_str(model, b"general.architecture", buf, len(buf))
    assert buf.value.decode() == spec.architecture


@pytest.mark.parametrize("arch", synth.ALL_ARCHITECTURES)
def test_synthetic_model_loads_runs_and_quantizes(arch: str, tmp_path: Path) -> None:
    path = synth.make_model(tmp_path / f"{arch}.gguf", arch)
    model = _load(path)
    try:
        _check_agrees(model, path)
        _run_one_token(model)
    finally:
        llama_cpp.llama_model_free(model)

    for ftype, name, main_type in (
        (llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q8_0", "Q8_0"),
        (llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q4_K_M", "Q4_K"),
    ):
        out = tmp_path / f"{arch}-{name}.gguf"
        qparams = llama_cpp.llama_model_quantize_default_params()
        qparams.ftype = ftype
        qparams.nthread = 1
        qparams.allow_requantize = True  # gpt-oss ships MXFP4 experts
        assert llama_cpp.llama_model_quantize(str(path).encode(), str(out).encode(), ctypes.byref(qparams)) == 0
        spec = read_model_spec(str(out))
        assert spec.ftype == name
        assert main_type in {t.ggml_type for t in spec.tensors}
        quantized = _load(out)
        try:
            _check_agrees(quantized, out)
        finally:
            llama_cpp.llama_model_free(quantized)


def test_gpt_oss_mxfp4_from_llama_quantizer(tmp_path: Path) -> None:
    """An F16 gpt-oss quantized by llama.cpp to MXFP4_MOE gets MXFP4 routed experts."""
    path = synth.make_model(tmp_path / "gpt-oss-f16.gguf", "gpt-oss", dtype=synth.F16, tensor_types={})
    out = tmp_path / "gpt-oss-mxfp4.gguf"
    qparams = llama_cpp.llama_model_quantize_default_params()
    qparams.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_MXFP4_MOE
    qparams.nthread = 1
    assert llama_cpp.llama_model_quantize(str(path).encode(), str(out).encode(), ctypes.byref(qparams)) == 0
    spec = read_model_spec(str(out))
    assert spec.ftype == "MXFP4_MOE"
    assert {t.ggml_type for t in spec.tensors if t.name.endswith("_exps.weight")} == {"MXFP4"}


def test_split_model_loads(tmp_path: Path) -> None:
    first = synth.make_model(tmp_path / "llama.gguf", "llama", split_max_tensors=8)
    model = _load(first)
    try:
        _check_agrees(model, first)
    finally:
        llama_cpp.llama_model_free(model)


def test_nemotron_with_mtp_layer_loads(tmp_path: Path) -> None:
    path = synth.make_model(tmp_path / "nemotron-mtp.gguf", "nemotron_h_moe", n_nextn=1)
    model = _load(path)
    try:
        _check_agrees(model, path)
    finally:
        llama_cpp.llama_model_free(model)


@pytest.mark.parametrize("arch", synth.ALL_ARCHITECTURES)
def test_layer_structure_matches_llama_cpp_log(arch: str, tmp_path: Path) -> None:
    """Per-layer facts llama.cpp logs while loading: which layers use the sliding window, the KV
    heads per layer, and which layers get a KV cache."""
    overrides: dict[str, Any] = {"n_layer": 7} if arch in ("gemma3", "gpt-oss") else {}
    path = synth.make_model(tmp_path / f"{arch}.gguf", arch, **overrides)
    spec = read_model_spec(str(path))
    _LOG.clear()
    model = _load(path)
    try:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = 256
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        assert ctx
        llama_cpp.llama_free(ctx)
    finally:
        llama_cpp.llama_model_free(model)
    log = "".join(_LOG)

    is_swa = {
        int(i): flag == "1" for i, flag in re.findall(r"layer\s+(\d+) assigned to device \S+, is_swa = (\d)", log)
    }
    n_trunk = spec.hparams.n_layer - spec.hparams.n_nextn_layer
    assert [is_swa[i] for i in range(n_trunk)] == list(spec.hparams.swa_layers[:n_trunk])

    m = re.search(r"print_info: n_head_kv\s+= (\[[^]]*\]|\d+)", log)
    assert m is not None
    logged = m.group(1)
    kv_heads = (
        [int(x) for x in logged.strip("[]").split(",")] if logged.startswith("[") else [int(logged)] * spec.n_layers
    )
    # llama.cpp keeps the metadata's head counts; our spec zeroes layers without attention tensors
    assert [h if layer.has_attention else 0 for h, layer in zip(kv_heads, spec.layers, strict=True)] == list(
        spec.hparams.n_head_kv
    )

    kv_layers = {int(i) for i in re.findall(r"llama_kv_cache: layer\s+(\d+): dev = ", log)}
    expected = {layer.index for layer in spec.layers if layer.has_attention and not layer.is_nextn}
    assert kv_layers == expected


@pytest.mark.parametrize("arch", synth.ALL_ARCHITECTURES)
def test_f16_model_loads_and_runs(arch: str, tmp_path: Path) -> None:
    path = synth.make_model(tmp_path / f"{arch}-f16.gguf", arch, dtype=synth.F16)
    model = _load(path)
    try:
        _check_agrees(model, path)
        _run_one_token(model)
    finally:
        llama_cpp.llama_model_free(model)
