"""The byte model against llama.cpp's rules and published llama.cpp logs.

Expected figures come from outside servefit: published llama.cpp load logs (quoted with their
source below) or arithmetic restated from llama.cpp's source on the model's published
hyperparameters; none is copied from our own output.
"""

from __future__ import annotations

import pytest

from configs import LLAMA31_8B
from servefit.errors import OptionsError
from servefit.inventory import spec_from_config
from servefit.memory import (
    Context,
    Layout,
    cache_row_bytes,
    context_cells,
    device_ranges,
    kv_bytes_per_token,
    kv_layers,
    layer_devices,
    memory_breakdown,
    recurrent_bytes_per_sequence,
    recurrent_layers,
)
from servefit.model import ModelSpec

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def llama8b() -> ModelSpec:
    return spec_from_config(LLAMA31_8B, "Q4_K_M")


@pytest.fixture(scope="module")
def nemotron_super() -> ModelSpec:
    from servefit.catalog.models import model_spec

    return model_spec("nemotron-3-super-120b-a12b", "Q4_K_S")


def test_llama31_8b_weights_match_published_cuda_log(llama8b: ModelSpec) -> None:
    # A published llama.cpp (ollama) load log of Llama 3.1 8B Q4_K_M, fully offloaded on one GPU:
    #   load_tensors:        CUDA0 model buffer size =  4403.49 MiB
    #   load_tensors:   CPU_Mapped model buffer size =   281.81 MiB
    # (github: a runpod ollama worker log, "offloaded 33/33 layers to GPU"; same figures in many others)
    b = memory_breakdown(llama8b, Context(8192), Layout(n_gpu=1, gpu_layers=33))
    assert abs(b.gpu_weights[0] / MIB - 4403.49) < 0.006
    assert abs(b.host_weights / MIB - 281.81) < 0.006


def test_llama31_8b_kv_matches_published_log(llama8b: ModelSpec) -> None:
    # Same log: n_ctx = 8192 (4 sequences, one unified cache), "CUDA0 KV buffer size = 1024.00 MiB"
    b = memory_breakdown(llama8b, Context(8192, n_seq=4, kv_unified=True), Layout(n_gpu=1, gpu_layers=33))
    assert b.gpu_kv[0] == 1024 * MIB
    assert b.host_kv == 0
    # 32 layers x 8 KV heads x 128 values x (K + V) x 2 bytes (f16)
    assert kv_bytes_per_token(llama8b) == 32 * 8 * 128 * 2 * 2


def test_ngl_counts_the_output_layer(llama8b: ModelSpec) -> None:
    # src/llama-model.cpp: i_gpu_start = n_layer + 1 - ngl; the output layer is index n_layer
    devs = layer_devices(32, Layout(n_gpu=1, gpu_layers=32))
    assert devs[0] == -1 and devs[1:] == (0,) * 32  # -ngl 32 leaves layer 0 on the CPU, output on GPU
    devs = layer_devices(32, Layout(n_gpu=1, gpu_layers=5))
    assert devs[:28] == (-1,) * 28 and devs[28:] == (0,) * 5
    b_partial = memory_breakdown(llama8b, Context(4096), Layout(n_gpu=1, gpu_layers=32))
    b_full = memory_breakdown(llama8b, Context(4096), Layout(n_gpu=1, gpu_layers=33))
    assert b_partial.gpu_weights[0] < b_full.gpu_weights[0]
    assert b_partial.gpu_layer_count == 32


def test_tensor_split_layer_counts_are_exact() -> None:
    # -ts 45,44 over 89 offloaded layers: GPU0 gets exactly 45, GPU1 44 (output included)
    start, ranges = device_ranges(88, Layout(n_gpu=2, gpu_layers=89, tensor_split=(45.0, 44.0)))
    assert start == 0 and ranges == ((0, 45), (45, 89))
    # default even split: layer il goes to the first GPU whose cumulative share exceeds il/89
    devs = layer_devices(88, Layout(n_gpu=2, gpu_layers=89))
    assert devs.count(0) == sum(1 for j in range(89) if j / 89 < 0.5)


def test_context_padding_and_slots() -> None:
    # llama-context.cpp: n_ctx padded to 256; per-sequence size padded to 256 and n_ctx rounded to it
    assert context_cells(Context(5000), 0)[:2] == (5120, 5120)
    assert context_cells(Context(8192, n_seq=3), 0)[:2] == (3 * 2816, 2816)
    # SWA cache: min(n_ctx_seq, n_swa + n_ubatch) padded to 256
    assert context_cells(Context(32768, n_ubatch=512), 1024)[2] == 1536
    assert context_cells(Context(1024, n_ubatch=512), 4096)[2] == 1024


def test_cache_row_bytes() -> None:
    assert cache_row_bytes("f16", 1024) == 2048
    assert cache_row_bytes("q8_0", 1024) == 1024 // 32 * 34
    assert cache_row_bytes("q4_0", 1024) == 1024 // 32 * 18
    with pytest.raises(OptionsError):
        cache_row_bytes("q7_x", 1024)


def test_nemotron_super_kv_only_on_attention_layers(nemotron_super: ModelSpec) -> None:
    # Published architecture: 88 layers, 8 attention layers ('*' in the hybrid pattern), 2 KV heads of 128
    pattern = "MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME"
    assert kv_layers(nemotron_super) == tuple(i for i, c in enumerate(pattern) if c == "*")
    assert kv_bytes_per_token(nemotron_super) == 8 * 2 * 128 * 2 * 2
    assert recurrent_layers(nemotron_super) == tuple(i for i, c in enumerate(pattern) if c == "M")


def test_nemotron_super_recurrent_state(nemotron_super: ModelSpec) -> None:
    # llama_hparams::n_embd_r / n_embd_s with the published Mamba-2 mixer: 128 heads x 64, state 128,
    # 8 groups, conv kernel 4 -> d_inner 8192; F32, 40 Mamba layers
    d_inner, d_state, n_group, d_conv = 128 * 64, 128, 8, 4
    per_layer = 4 * ((d_conv - 1) * (d_inner + 2 * n_group * d_state) + d_state * d_inner)
    assert recurrent_bytes_per_sequence(nemotron_super) == 40 * per_layer
    b = memory_breakdown(nemotron_super, Context(4096, n_seq=3), Layout(n_gpu=0))
    assert b.host_recurrent == 3 * 40 * per_layer


def test_v_cache_padding_without_flash_attention(nemotron_super: ModelSpec) -> None:
    # without FA the V cache is transposed; widths are equal here, so FA on/off give the same bytes
    on = memory_breakdown(nemotron_super, Context(4096, flash_attn=True), Layout(n_gpu=0))
    off = memory_breakdown(nemotron_super, Context(4096, flash_attn=False), Layout(n_gpu=0))
    assert on.host_kv == off.host_kv == 4096 * 8 * 2 * 128 * 2 * 2


def test_n_cpu_moe_moves_only_expert_tensors(nemotron_super: ModelSpec) -> None:
    full = nemotron_super.hparams.n_layer + 1
    base = memory_breakdown(nemotron_super, Context(4096), Layout(n_gpu=1, gpu_layers=full))
    moved = memory_breakdown(nemotron_super, Context(4096), Layout(n_gpu=1, gpu_layers=full, n_cpu_moe=10))
    expert_bytes = sum(
        t.nbytes for t in nemotron_super.tensors if t.layer is not None and t.layer < 10 and "_exps." in t.name
    )
    assert base.host_weights + expert_bytes == moved.host_weights
    assert base.gpu_weights[0] - moved.gpu_weights[0] >= expert_bytes
    assert base.gpu_kv == moved.gpu_kv  # KV stays with its layer


def test_mtp_layer_is_not_loaded(nemotron_super: ModelSpec) -> None:
    # llama_model_params.load_mtp defaults to false: next-n tensors are skipped (TENSOR_SKIP)
    hp = nemotron_super.hparams
    assert hp.n_nextn_layer == 1
    mtp_bytes = sum(t.nbytes for t in nemotron_super.tensors if t.layer == hp.n_layer - 1)
    assert mtp_bytes > 0
    b = memory_breakdown(nemotron_super, Context(4096), Layout(n_gpu=0))
    assert b.host_weights == nemotron_super.tensor_bytes - mtp_bytes


def test_sliding_window_layers_with_their_own_head_size() -> None:
    # Gemma-4-style: sliding-window layers have K/V heads of their own size (key_length_swa /
    # value_length_swa). llama_hparams::n_embd_head_k(il) picks the SWA size on SWA layers, so a
    # cache cell of such a layer holds n_head_kv * 128 K values, a full layer n_head_kv * 256.
    import dataclasses

    from servefit.catalog.models import model_spec

    base = model_spec("gemma-3-4b-it", "Q4_K_M")
    hp = base.hparams
    assert hp.n_swa > 0 and any(hp.swa_layers) and not all(hp.swa_layers[: hp.n_layer])
    wide = dataclasses.replace(hp, n_embd_head_k=256, n_embd_head_v=256, n_embd_head_k_swa=128, n_embd_head_v_swa=128)
    spec = dataclasses.replace(base, hparams=wide)
    layers = kv_layers(spec)
    expected = sum(
        wide.n_head_kv[il] * (128 if wide.swa_layers[il] else 256) * 2 * 2  # K + V, f16
        for il in layers
    )
    assert kv_bytes_per_token(spec) == expected
    full_only = sum(wide.n_head_kv[il] * 256 * 2 * 2 for il in layers if not wide.swa_layers[il])
    assert kv_bytes_per_token(spec, swa=False) == full_only
    # without flash attention V rows are padded to the widest layer: n_embd_v_gqa_max uses 256
    v_max = max(wide.n_head_kv[il] * (128 if wide.swa_layers[il] else 256) for il in range(wide.n_layer))
    k_bytes = sum(wide.n_head_kv[il] * (128 if wide.swa_layers[il] else 256) * 2 for il in layers)
    assert kv_bytes_per_token(spec, flash_attn=False) == k_bytes + len(layers) * v_max * 2
