"""The byte model: what llama.cpp allocates for a model, buffer by buffer (pure functions).

Every rule restates the reference llama.cpp (the one vendored by llama-cpp-python 0.3.36); the
source file each rule comes from is named next to it.

Weights (``src/llama-model.cpp``: ``load_tensors``; ``src/llama-model-loader.cpp``:
``create_tensor``): the input layer (token embeddings) always stays on the host. Repeating layers
are given to GPUs from the last one backwards: with ``-ngl N`` the first ``n_layer + 1 - N``
layers stay on the host, the rest go to the GPUs, split by the cumulative ``-ts`` proportions
(``upper_bound`` over ``(il - i_gpu_start) / n_gpu_layers``); the output layer counts as layer
``n_layer``, so it reaches a GPU only when ``N > n_layer`` (full offload). ``--n-cpu-moe N`` keeps
the routed-expert tensors of layers ``0..N-1`` on the host. Next-n (MTP) layers are not loaded
unless speculative MTP decoding is on. A model without an ``output`` tensor reuses the token
embeddings, duplicated onto the output device. CUDA buffers align tensors to 128 bytes and pad
quantized rows to 512 values; host buffers align to 32 bytes. With mmap the host weights are a
view of the file (``CPU_Mapped``: the byte range spanned by the host tensors); without mmap they
are copied into an allocated buffer (``CUDA_Host`` pinned memory on GPU machines). On a CPU-only
x86 machine with AVX2, matrix weights of types Q4_0, Q4_K, IQ4_NL and MXFP4 whose row count is a
multiple of 8 are repacked into a separate ``CPU_REPACK`` buffer (``ggml/src/ggml-cpu/repack.cpp``).

KV cache (``src/llama-kv-cache.cpp``, ``src/llama-kv-cache-iswa.cpp``): one K and one V tensor per
layer that has attention, ``[n_embd_{k,v}_gqa(il), kv_size, n_stream]`` of the cache types, on
the device of its layer. ``n_ctx`` is padded to 256; with ``n_seq`` slots and a non-unified cache
each of the ``n_seq`` streams holds ``n_ctx / n_seq`` cells (padded to 256). Sliding-window layers
hold ``min(kv_size, n_swa * (unified ? n_seq : 1) + n_ubatch)`` cells, padded to 256. Without flash
attention V is stored transposed and, when the V width varies across layers, padded to the widest
layer; a quantized V cache then is refused. MLA models store K only.

Recurrent state (``src/llama-memory-recurrent.cpp``): per recurrent layer an ``r`` (convolution)
and an ``s`` (SSM / WKV) tensor, F32, with ``max(1, n_seq)`` rows.

Output buffer (``src/llama-context.cpp``: ``output_reserve``): ``n_vocab * n_seq`` F32 logits on
the host. Compute buffers (``sched_reserve``): the graph for ``n_ubatch`` tokens and the full KV
size, measured by ggml's allocator; modelled here from the graph's largest live tensors (see
``compute_buffers``).
"""

from __future__ import annotations

import functools
import re
import struct
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from servefit.errors import OptionsError
from servefit.model import ModelSpec, TensorInfo, TensorRole

__all__ = [
    "CACHE_TYPES",
    "CUDA_OVERHEAD_BYTES",
    "Breakdown",
    "Context",
    "Layout",
    "Profile",
    "cache_row_bytes",
    "clear_caches",
    "compute_buffers",
    "context_cells",
    "device_ranges",
    "gpu_overhead_bytes",
    "is_quantized_cache_type",
    "kv_bytes_per_token",
    "kv_layers",
    "layer_devices",
    "mapped_weights_bytes",
    "memory_breakdown",
    "output_buffer_bytes",
    "profile",
    "profile_breakdown",
    "recurrent_bytes_per_sequence",
    "recurrent_layers",
    "recurrent_row_sizes",
]

MIB = 1024**2

# KV cache types llama-server accepts for -ctk / -ctv (common/arg.cpp: kv_cache_types).
CACHE_TYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")

# Per-GPU memory the runtime takes before any llama.cpp buffer (CUDA context with ggml-cuda's
# kernels, cuBLAS handles and workspace): 457 MiB, the minimum ollama reserves per CUDA and ROCm
# GPU (ollama discover/gpu.go: cudaMinimumMemory = rocmMinimumMemory = 457 MiB); see docs/accuracy.md.
CUDA_OVERHEAD_BYTES = 457 * MIB
GPU_OVERHEAD_BYTES = {"cuda12": CUDA_OVERHEAD_BYTES, "cuda13": CUDA_OVERHEAD_BYTES, "rocm": 457 * MIB}
DEFAULT_GPU_OVERHEAD_BYTES = 300 * MIB  # Vulkan / Metal: an estimate, no published figure

# Architectures whose memory is purely recurrent (src/llama-arch.cpp: llm_arch_is_recurrent).
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
# Hybrid attention + recurrent architectures (src/llama-arch.cpp: llm_arch_is_hybrid).
HYBRID_ARCHS = frozenset(
    {
        "jamba",
        "falcon-h1",
        "plamo2",
        "granitehybrid",
        "lfm2",
        "lfm2moe",
        "nemotron_h",
        "nemotron_h_moe",
        "qwen3next",
        "kimi-linear",
        "qwen35",
        "qwen35moe",
        "minimax-01",
    }
)
_NEMOTRON_H = frozenset({"nemotron_h", "nemotron_h_moe"})

# CPU repack (ggml/src/ggml-cpu/repack.cpp: ggml_repack_get_optimal_repack_type) on x86 with AVX2.
REPACK_TYPES_AVX2 = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})
CUDA_ALIGNMENT = 128  # ggml_backend_cuda_buffer_type_get_alignment
HOST_ALIGNMENT = 32  # TENSOR_ALIGNMENT
CUDA_ROW_PADDING = 512  # MATRIX_ROW_PADDING in ggml-cuda/common.cuh
SCHED_MAX_COPIES = 4  # GGML_SCHED_MAX_COPIES (ggml/src/ggml-backend.cpp): input copies under pipeline parallelism
_NOT_MATMUL = re.compile(r"(token_embd|pos_embd|token_types|per_layer_token_embd|ssm_conv1d|ssm_a|ssm_d)(\.|$)")


def _f32(x: float) -> float:
    """Round to IEEE single precision, as llama.cpp's ``float`` arithmetic does."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def _ggml_type(name: str) -> GGMLQuantizationType:
    try:
        return GGMLQuantizationType[name.upper()]
    except KeyError as exc:
        raise OptionsError(
            f"unknown cache type {name!r}: expected one of {', '.join(CACHE_TYPES)}", option="cache-type"
        ) from exc


@functools.lru_cache(maxsize=1024)
def cache_row_bytes(type_name: str, n_elements: int) -> int:
    """Bytes of one row of ``n_elements`` values of a GGML type (``ggml_row_size``)."""
    block, size = GGML_QUANT_SIZES[_ggml_type(type_name)]
    if n_elements % block:
        raise OptionsError(
            f"cache type {type_name} needs rows that are a multiple of {block} values, got {n_elements}",
            option="cache-type",
        )
    return n_elements // block * size


@functools.lru_cache(maxsize=64)
def is_quantized_cache_type(type_name: str) -> bool:
    """True for block-quantized cache types (which, for V, need flash attention)."""
    return _ggml_type(type_name).name not in {"F32", "F16", "BF16"}


# --------------------------------------------------------------------------------------------
# Which layers hold KV cache and recurrent state
# --------------------------------------------------------------------------------------------


def _trunk_layers(spec: ModelSpec) -> int:
    """Layers of the main model: multi-token-prediction (next-n) layers excluded."""
    return spec.hparams.n_layer - spec.hparams.n_nextn_layer


def _metadata_int(spec: ModelSpec, key: str) -> int:
    value = spec.metadata.get(f"{spec.architecture}.{key}")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _is_recurrent(spec: ModelSpec, il: int) -> bool:
    hp = spec.hparams
    if spec.architecture in RECURRENT_ARCHS:
        return il < _trunk_layers(spec)
    return bool(hp.recurrent) and il < len(hp.recurrent) and hp.recurrent[il]


def kv_layers(spec: ModelSpec) -> tuple[int, ...]:
    """Indices of the layers that own a K/V cache in the main context (cached per spec; see ``_kv_layers``)."""
    return profile(spec).kv_layer_ids


def _kv_layers(spec: ModelSpec) -> tuple[int, ...]:
    """Indices of the layers that own a K/V cache in the main context (src/llama-model.cpp: create_memory).

    Pure recurrent architectures have none. Hybrids keep KV on their non-recurrent layers
    (Nemotron-H: only where the layer has no FFN either); next-n (MTP) layers are left out of the
    main context. Gemma 3n / Gemma 4 give a cache only to their first layers (the rest reuse it).
    """
    hp = spec.hparams
    if spec.architecture in RECURRENT_ARCHS:
        return ()
    trunk = _trunk_layers(spec)
    if spec.architecture == "gemma3n":
        trunk = min(trunk, 20)
    elif spec.architecture == "gemma4":
        trunk = min(trunk, hp.n_layer - _metadata_int(spec, "attention.shared_kv_layers"))
    out: list[int] = []
    for il in range(trunk):
        if _is_recurrent(spec, il) and spec.architecture != "falcon-h1":
            continue
        if spec.architecture in _NEMOTRON_H and hp.n_ff[il] != 0:
            continue
        if hp.n_head_kv[il] == 0 and spec.architecture in HYBRID_ARCHS:
            continue
        out.append(il)
    return tuple(out)


def recurrent_layers(spec: ModelSpec) -> tuple[int, ...]:
    """Indices of the layers that hold recurrent state (r and s tensors) in the main context."""
    return profile(spec).recurrent


def _recurrent_layers(spec: ModelSpec) -> tuple[int, ...]:
    hp = spec.hparams
    trunk = _trunk_layers(spec)
    if spec.architecture in RECURRENT_ARCHS or spec.architecture == "falcon-h1":
        return tuple(range(trunk))
    if spec.architecture not in HYBRID_ARCHS:
        return ()
    out = [il for il in range(trunk) if _is_recurrent(spec, il)]
    if spec.architecture in _NEMOTRON_H:
        out = [il for il in out if hp.n_ff[il] == 0]
    return tuple(out)


def _is_mla(spec: ModelSpec) -> bool:
    hp = spec.hparams
    return hp.n_embd_head_k_mla > 0 and hp.n_embd_head_v_mla > 0


def _swa_flags(spec: ModelSpec) -> tuple[bool, ...]:
    swa = spec.hparams.swa_layers
    if spec.hparams.n_swa <= 0 or not swa:
        return (False,) * spec.hparams.n_layer
    return tuple(swa[i] if i < len(swa) else False for i in range(spec.hparams.n_layer))


def _kv_widths(spec: ModelSpec, flash_attn: bool) -> list[tuple[int, int, int, bool]]:
    """(layer, n_embd_k_gqa, n_embd_v_gqa, is_swa) per cache layer, V padded as llama.cpp does without FA."""
    hp = spec.hparams
    mla = _is_mla(spec)
    swa = _swa_flags(spec)
    v_max = _v_width_max(spec)
    out: list[tuple[int, int, int, bool]] = []
    for il in _kv_layers(spec):
        head_k, head_v = _head_sizes(spec, swa[il])
        k = head_k * hp.n_head_kv[il]
        if mla:
            v = 0
        elif flash_attn:
            v = head_v * hp.n_head_kv[il]
        else:
            v = v_max  # [TAG_V_CACHE_VARIABLE]: transposed V rows are padded to the widest layer
        out.append((il, k, v, swa[il]))
    return out


def _head_sizes(spec: ModelSpec, swa: bool) -> tuple[int, int]:
    """(K, V) head size of a layer: sliding-window layers may have their own (``llama_hparams::n_embd_head_k(il)``,
    ``key_length_swa`` / ``value_length_swa``; 0 in Hparams means the same as the full-attention layers)."""
    hp = spec.hparams
    if swa:
        return hp.n_embd_head_k_swa or hp.n_embd_head_k, hp.n_embd_head_v_swa or hp.n_embd_head_v
    return hp.n_embd_head_k, hp.n_embd_head_v


def _v_width_max(spec: ModelSpec) -> int:
    """``n_embd_v_gqa_max``: the widest V row over all layers (per-layer head size and KV head count)."""
    hp = spec.hparams
    swa = _swa_flags(spec)
    return max(
        (_head_sizes(spec, swa[il] if il < len(swa) else False)[1] * h for il, h in enumerate(hp.n_head_kv)),
        default=0,
    )


def kv_bytes_per_token(
    spec: ModelSpec,
    type_k: str = "f16",
    type_v: str = "f16",
    *,
    flash_attn: bool = True,
    swa: bool = True,
) -> int:
    """Bytes of K and V one cached token (one KV cell) takes over all layers that have attention.

    Only layers with attention count (recurrent and attention-free layers hold no KV). Sliding-window
    (SWA) layers are counted by default, because each cell of their cache costs the same; but their
    cache holds at most ``n_swa * n_seq + n_ubatch`` cells (padded to 256), not the whole context:
    pass ``swa=False`` for the bytes per token of the full-attention layers only, the part that grows
    with context. Without flash attention (``flash_attn=False``) V rows are padded to the widest
    layer, as llama.cpp stores V transposed then. MLA models store no V.
    """
    full, swa_rows = profile(spec).kv_row_prefix(type_k, type_v, flash_attn)
    return full[-1] + (swa_rows[-1] if swa else 0)


def recurrent_row_sizes(spec: ModelSpec) -> tuple[int, int]:
    """(n_embd_r, n_embd_s): values per sequence of the r and s tensors of one recurrent layer.

    Restates ``llama_hparams::n_embd_r`` / ``n_embd_s`` (src/llama-hparams.cpp): RWKV keeps
    ``token_shift_count * n_embd`` and ``n_embd * wkv_head_size``; LFM2 short convolutions keep
    ``n_embd * (L_cache - 1)``; Mamba/Mamba-2 and gated-delta-net layers keep the convolution window
    ``(d_conv - 1) * (d_inner + 2 * n_group * d_state)`` and the state ``d_state * d_inner``.
    """
    hp = spec.hparams
    wkv_head_size = _metadata_int(spec, "wkv.head_size")
    if wkv_head_size:
        token_shift = _metadata_int(spec, "token_shift_count") or 2
        return token_shift * hp.n_embd, hp.n_embd * wkv_head_size
    shortconv = _metadata_int(spec, "shortconv.l_cache")
    if shortconv:
        return hp.n_embd * (shortconv - 1), hp.ssm_d_state * hp.ssm_d_inner
    n_conv = max(hp.ssm_d_conv - 1, 0) * (hp.ssm_d_inner + 2 * hp.ssm_n_group * hp.ssm_d_state)
    return n_conv, hp.ssm_d_state * hp.ssm_d_inner


def recurrent_bytes_per_sequence(spec: ModelSpec) -> int:
    """Bytes of recurrent state one sequence slot takes, as llama-memory-recurrent allocates it.

    Each recurrent layer has an r tensor (convolution / token-shift window) and an s tensor (SSM or
    WKV state), both F32 and one row per slot; llama.cpp allocates ``max(1, n_seq_max)`` rows, so
    the total is this figure times the number of parallel slots. Zero for models without recurrent
    layers.
    """
    prof = profile(spec)
    return len(prof.recurrent) * prof.recurrent_row_bytes


# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# Per-spec aggregates (computed once per ModelSpec, reused by every plan)
# --------------------------------------------------------------------------------------------


def _type_block(type_name: str) -> tuple[int, int]:
    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    except KeyError:
        return 1, 1


def _cuda_alloc_bytes(t: TensorInfo) -> int:
    """ggml_backend_cuda_buffer_type_get_alloc_size, padded to the CUDA buffer alignment."""
    size = t.nbytes
    block, type_size = _type_block(t.ggml_type)
    if block > 1 and t.shape and t.shape[0] % CUDA_ROW_PADDING:
        size += (CUDA_ROW_PADDING - t.shape[0] % CUDA_ROW_PADDING) // block * type_size
    return _pad(size, CUDA_ALIGNMENT)


def _is_matmul_weight(t: TensorInfo) -> bool:
    if not t.name.endswith(".weight") or t.role in (TensorRole.EMBEDDING, TensorRole.NORM):
        return False
    leaf = t.name.split(".")[-2]
    if _NOT_MATMUL.match(leaf):
        return False
    if t.role is TensorRole.ROUTED_EXPERTS:
        return len(t.shape) == 3
    return len(t.shape) == 2 and t.shape[1] > 1


def _repackable(t: TensorInfo) -> bool:
    return t.ggml_type in REPACK_TYPES_AVX2 and _is_matmul_weight(t) and t.shape[1] % 8 == 0


@dataclass(frozen=True, slots=True)
class _Part:
    """Bytes of a group of tensors in each kind of buffer."""

    cuda: int = 0  # CUDA allocation (row padding + 128-byte alignment)
    host: int = 0  # plain bytes (mmap page cache)
    host_alloc: int = 0  # host allocation (32-byte alignment)
    repack: int = 0  # bytes a CPU-only x86 (AVX2) build moves into the CPU_REPACK buffer


def _part(tensors: Sequence[TensorInfo]) -> _Part:
    return _Part(
        cuda=sum(_cuda_alloc_bytes(t) for t in tensors),
        host=sum(t.nbytes for t in tensors),
        host_alloc=sum(_pad(t.nbytes, HOST_ALIGNMENT) for t in tensors),
        repack=sum(_pad(t.nbytes, HOST_ALIGNMENT) for t in tensors if _repackable(t)),
    )


def _prefix(values: Sequence[int]) -> tuple[int, ...]:
    out = [0]
    for v in values:
        out.append(out[-1] + v)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Prefix:
    """Prefix sums over layers of one kind of bytes (``p[b] - p[a]`` is layers ``a..b-1``)."""

    cuda: tuple[int, ...]
    host: tuple[int, ...]
    host_alloc: tuple[int, ...]
    repack: tuple[int, ...]

    @staticmethod
    def of(parts: Sequence[_Part]) -> _Prefix:
        return _Prefix(
            _prefix([p.cuda for p in parts]),
            _prefix([p.host for p in parts]),
            _prefix([p.host_alloc for p in parts]),
            _prefix([p.repack for p in parts]),
        )


@dataclass(frozen=True)
class Profile:
    """Per-model aggregates: bytes per layer and buffer kind as prefix sums, cache layers, graph sizes."""

    n_layer: int  # n_layer_all: repeating layers including next-n
    trunk: int
    input: _Part  # token embeddings and other input-layer tensors: always on the host
    output: _Part  # output layer (lm head, output norm), with the duplicated token_embd when tied
    output_tied: bool
    tied_copy_bytes: int  # host allocation of the duplicated token_embd (a copy only without mmap)
    dense: _Prefix  # per layer, everything but routed experts (unloaded MTP layers count zero)
    experts: _Prefix  # per layer, routed experts
    moe_layers: int
    first_moe_layer: int
    kv_full: tuple[tuple[int, int], ...]  # (layer, n_embd_k_gqa) for full-attention cache layers
    kv_swa: tuple[tuple[int, int], ...]
    v_width: dict[int, int]  # n_embd_v_gqa per cache layer with flash attention
    v_width_max: int  # width of every V row without flash attention
    mla: bool
    kv_layer_ids: tuple[int, ...]
    recurrent: tuple[int, ...]
    recurrent_count: tuple[int, ...]  # prefix count of recurrent layers
    recurrent_row_bytes: int  # F32 r + s bytes per slot per recurrent layer
    n_vocab: int
    n_embd: int
    n_head_max: int
    n_head_kv_max: int
    head_dim_k: int
    head_dim_v: int
    n_ff_max: int
    n_expert: int
    n_expert_used: int
    n_ff_exp: int
    n_swa: int
    ssm_d_inner: int
    ssm_d_state: int
    ssm_n_group: int
    ssm_heads: int
    _kv_cache: dict[tuple[str, str, bool], tuple[tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _breakdowns: dict[tuple[object, ...], Breakdown] = field(default_factory=dict, compare=False, repr=False)

    def kv_row_prefix(self, type_k: str, type_v: str, flash_attn: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Prefix sums over layers of K+V bytes per cell: (full-attention layers, SWA layers)."""
        key = (type_k, type_v, flash_attn)
        hit = self._kv_cache.get(key)
        if hit is not None:
            return hit
        full = [0] * self.n_layer
        swa = [0] * self.n_layer
        for target, layers in ((full, self.kv_full), (swa, self.kv_swa)):
            for il, k in layers:
                v = 0 if self.mla else (self.v_width[il] if flash_attn else self.v_width_max)
                target[il] = (cache_row_bytes(type_k, k) if k else 0) + (cache_row_bytes(type_v, v) if v else 0)
        result = (_prefix(full), _prefix(swa))
        self._kv_cache[key] = result
        return result


_PROFILES: dict[int, tuple[weakref.ref[ModelSpec], Profile]] = {}


def profile(spec: ModelSpec) -> Profile:
    """The aggregates of a spec, computed once and cached for the spec's lifetime."""
    key = id(spec)
    hit = _PROFILES.get(key)
    if hit is not None and hit[0]() is spec:
        return hit[1]
    prof = _build_profile(spec)

    def _forget(_ref: weakref.ref[ModelSpec], k: int = key) -> None:
        _PROFILES.pop(k, None)

    _PROFILES[key] = (weakref.ref(spec, _forget), prof)
    return prof


def _is_output(t: TensorInfo) -> bool:
    return t.layer is None and (t.role is TensorRole.OUTPUT or t.name.startswith("output"))


def _build_profile(spec: ModelSpec) -> Profile:
    hp = spec.hparams
    n_layer = hp.n_layer
    trunk = _trunk_layers(spec)
    dense: list[list[TensorInfo]] = [[] for _ in range(n_layer)]
    experts: list[list[TensorInfo]] = [[] for _ in range(n_layer)]
    inputs: list[TensorInfo] = []
    outputs: list[TensorInfo] = []
    token_embd: TensorInfo | None = None
    has_output_weight = False
    for t in spec.tensors:
        if t.layer is None:
            if _is_output(t):
                outputs.append(t)
                has_output_weight = has_output_weight or t.name == "output.weight"
            else:
                inputs.append(t)
                if t.name == "token_embd.weight":
                    token_embd = t
        elif t.layer >= trunk or t.layer >= n_layer:
            continue  # next-n (MTP) layers: TENSOR_SKIP unless speculative MTP is on
        elif t.role is TensorRole.ROUTED_EXPERTS:
            experts[t.layer].append(t)
        else:
            dense[t.layer].append(t)
    tied = not has_output_weight and token_embd is not None
    out_part = _part(outputs)
    if tied and token_embd is not None:
        # llama.cpp duplicates token_embd as the output matrix, on the output device
        dup = _part([token_embd])
        rep = dup.host_alloc if token_embd.ggml_type in REPACK_TYPES_AVX2 and token_embd.shape[1] % 8 == 0 else 0
        out_part = _Part(out_part.cuda + dup.cuda, out_part.host, out_part.host_alloc, out_part.repack + rep)
    widths = _kv_widths(spec, True)
    rec_layers = _recurrent_layers(spec)
    rec_set = set(rec_layers)
    v_max = _v_width_max(spec)
    moe = [i for i, ts in enumerate(experts) if ts]
    return Profile(
        n_layer=n_layer,
        trunk=trunk,
        input=_part(inputs),
        output=out_part,
        output_tied=tied,
        tied_copy_bytes=_pad(token_embd.nbytes, HOST_ALIGNMENT) if tied and token_embd is not None else 0,
        dense=_Prefix.of([_part(ts) for ts in dense]),
        experts=_Prefix.of([_part(ts) for ts in experts]),
        moe_layers=len(moe),
        first_moe_layer=moe[0] if moe else 0,
        kv_full=tuple((il, k) for il, k, _v, s in widths if not s),
        kv_swa=tuple((il, k) for il, k, _v, s in widths if s),
        v_width={il: v for il, _k, v, _s in widths},
        v_width_max=v_max,
        mla=_is_mla(spec),
        kv_layer_ids=tuple(il for il, _k, _v, _s in widths),
        recurrent=rec_layers,
        recurrent_count=_prefix([1 if il in rec_set else 0 for il in range(n_layer)]),
        recurrent_row_bytes=4 * sum(recurrent_row_sizes(spec)),
        n_vocab=hp.n_vocab,
        n_embd=hp.n_embd,
        n_head_max=max(hp.n_head, default=0),
        n_head_kv_max=max(hp.n_head_kv, default=0),
        head_dim_k=max(hp.n_embd_head_k, hp.n_embd_head_k_swa),  # the widest attention (graph sizes)
        head_dim_v=max(hp.n_embd_head_v, hp.n_embd_head_v_swa),
        n_ff_max=max(hp.n_ff, default=0),
        n_expert=hp.n_expert,
        n_expert_used=hp.n_expert_used,
        n_ff_exp=hp.n_ff_exp,
        n_swa=hp.n_swa if any(_swa_flags(spec)) else 0,
        ssm_d_inner=hp.ssm_d_inner,
        ssm_d_state=hp.ssm_d_state,
        ssm_n_group=hp.ssm_n_group,
        ssm_heads=hp.ssm_dt_rank,
    )


# --------------------------------------------------------------------------------------------
# Settings and placement
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    """llama.cpp context parameters (what llama-server is given)."""

    n_ctx: int  # -c, before padding
    n_seq: int = 1  # -np
    n_batch: int = 2048  # -b
    n_ubatch: int = 512  # -ub
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = True
    kv_unified: bool = False
    swa_full: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the weights go: ``-ngl``, ``-ts`` and ``--n-cpu-moe`` for a machine with ``n_gpu`` GPUs."""

    n_gpu: int
    gpu_layers: int = 0  # -ngl, counting the output layer: n_layer + 1 is full offload
    tensor_split: tuple[float, ...] = ()  # -ts proportions; () = equal
    n_cpu_moe: int = 0
    mmap: bool = True
    cpu_repack: bool = True  # the CPU backend repacks Q4_0/Q4_K/IQ4_NL/MXFP4 (x86 AVX2); only without GPUs
    # pipeline parallelism: None = llama.cpp's rule (several GPUs, full offload, no --n-cpu-moe); False where
    # a backend lacks async compute and events (the RPC backend of 2025 builds), True to force it
    pipeline_parallel: bool | None = None


def context_cells(ctx: Context, n_swa: int) -> tuple[int, int, int]:
    """(n_ctx, cells per stream of full-attention layers, cells per stream of SWA layers).

    src/llama-context.cpp pads ``n_ctx`` to 256 and, for a non-unified cache, gives each of the
    ``n_seq`` streams ``n_ctx / n_seq`` cells padded to 256 (``n_ctx`` then becomes a multiple).
    """
    n_ctx = _pad(max(ctx.n_ctx, 1), 256)
    n_seq = max(1, ctx.n_seq)
    if ctx.kv_unified:
        per_stream = n_ctx
    else:
        per_stream = _pad(n_ctx // n_seq, 256)
        if per_stream == 0:
            raise OptionsError(f"context {ctx.n_ctx} is too small for {n_seq} parallel slots", option="ctx")
        n_ctx = per_stream * n_seq
    # llama.cpp caps the batch by the context asked for, before padding it (src/llama-context.cpp)
    n_ubatch = min(ctx.n_ubatch, ctx.n_batch, max(ctx.n_ctx, 1))
    swa_cells = per_stream
    if n_swa > 0 and not ctx.swa_full:
        swa_cells = _pad(min(per_stream, n_swa * (n_seq if ctx.kv_unified else 1) + n_ubatch), 256)
    return n_ctx, per_stream, swa_cells


def _splits(n_gpu: int, tensor_split: Sequence[float]) -> list[float]:
    weights = list(tensor_split[:n_gpu]) if tensor_split and any(tensor_split) else [1.0] * n_gpu
    weights += [0.0] * (n_gpu - len(weights))
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total = _f32(total + _f32(w))
        cum.append(total)
    return [_f32(c / total) for c in cum]


_RANGES_CACHE: dict[tuple[int, int, int, tuple[float, ...]], tuple[int, tuple[tuple[int, int], ...]]] = {}


def device_ranges(n_layer: int, layout: Layout) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(first GPU layer, ``[lo, hi)`` layer range per GPU); index ``n_layer`` is the output layer.

    Restates ``get_layer_buft_list`` in src/llama-model.cpp: ``i_gpu_start = n_layer + 1 - ngl``
    and layer ``il`` goes to the first GPU whose cumulative split exceeds ``(il - i_gpu_start) / ngl``
    (float arithmetic).
    """
    key = (n_layer, layout.n_gpu, layout.gpu_layers, layout.tensor_split)
    hit = _RANGES_CACHE.get(key)
    if hit is not None:
        return hit
    n_gpu = layout.n_gpu
    if n_gpu == 0 or layout.gpu_layers <= 0:
        result = n_layer + 1, ((n_layer + 1, n_layer + 1),) * n_gpu
    else:
        start = max(n_layer + 1 - layout.gpu_layers, 0)
        act = min(layout.gpu_layers, n_layer + 1)
        splits = _splits(n_gpu, layout.tensor_split)
        bounds = [0]
        for d in range(n_gpu - 1):
            sp = splits[d]
            c = min(max(int(sp * act), 0), act)
            while c > 0 and _f32((c - 1) / act) >= sp:
                c -= 1
            while c < act and _f32(c / act) < sp:
                c += 1
            bounds.append(max(c, bounds[-1]))
        bounds.append(act)
        result = start, tuple((start + bounds[d], start + bounds[d + 1]) for d in range(n_gpu))
    if len(_RANGES_CACHE) > 65536:
        _RANGES_CACHE.clear()
    _RANGES_CACHE[key] = result
    return result


def layer_devices(n_layer: int, layout: Layout) -> tuple[int, ...]:
    """Device of each repeating layer and, last, of the output layer: -1 = host, k = GPU k."""
    _start, ranges = device_ranges(n_layer, layout)
    out = [-1] * (n_layer + 1)
    for d, (lo, hi) in enumerate(ranges):
        for il in range(lo, min(hi, n_layer + 1)):
            out[il] = d
    return tuple(out)


# --------------------------------------------------------------------------------------------
# The breakdown
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Bytes per GPU (in order) and on the host, by kind of buffer."""

    gpu_weights: tuple[int, ...]
    gpu_kv: tuple[int, ...]
    gpu_recurrent: tuple[int, ...]
    gpu_compute: tuple[int, ...]
    gpu_other: tuple[int, ...]  # runtime overhead (CUDA context, cuBLAS)
    host_weights: int  # RAM the host weights need (page cache under mmap, allocation otherwise)
    host_weights_repack: int  # of which in the CPU_REPACK buffer
    host_kv: int
    host_recurrent: int
    host_compute: int
    host_output: int
    n_ctx: int  # context llama.cpp will use (padded)
    gpu_layer_count: int  # layers (output included) on GPUs
    pipeline_parallel: bool
    gpu_total: tuple[int, ...]  # per GPU, every buffer
    host_total: int  # every host buffer


def output_buffer_bytes(spec: ModelSpec, n_seq: int) -> int:
    """Host output buffer llama.cpp reserves at start: F32 logits for one output per sequence."""
    return spec.hparams.n_vocab * max(1, n_seq) * 4


def gpu_overhead_bytes(backend: str) -> int:
    """Runtime memory a GPU backend takes on each device before llama.cpp's buffers."""
    return GPU_OVERHEAD_BYTES.get(backend, DEFAULT_GPU_OVERHEAD_BYTES)


def memory_breakdown(
    spec: ModelSpec,
    ctx: Context,
    layout: Layout,
    *,
    backend: str = "cuda12",
    overhead_bytes: int | None = None,
) -> Breakdown:
    """Every buffer llama.cpp allocates for ``spec`` with context ``ctx`` and placement ``layout``.

    Cost is proportional to the number of GPUs, not to the number of layers or tensors.
    """
    return profile_breakdown(spec, profile(spec), ctx, layout, backend, overhead_bytes)


def profile_breakdown(
    spec: ModelSpec, prof: Profile, ctx: Context, layout: Layout, backend: str, overhead_bytes: int | None
) -> Breakdown:
    """``memory_breakdown`` for a caller that already holds ``profile(spec)`` (the planner's probes)."""
    key = (ctx, layout, backend, overhead_bytes)
    hit = prof._breakdowns.get(key)
    if hit is not None:
        return hit
    if len(prof._breakdowns) > 8192:
        prof._breakdowns.clear()
    result = _breakdown(spec, prof, ctx, layout, backend, overhead_bytes)
    prof._breakdowns[key] = result
    return result


def _breakdown(
    spec: ModelSpec, prof: Profile, ctx: Context, layout: Layout, backend: str, overhead_bytes: int | None
) -> Breakdown:
    n_layer = prof.n_layer
    n_gpu = layout.n_gpu
    start, ranges = device_ranges(n_layer, layout)
    host_hi = min(start, n_layer)  # host layers are [0, host_hi)
    out_dev = -1
    for d, (lo, hi) in enumerate(ranges):
        if lo <= n_layer < hi:
            out_dev = d
            break
    cpu_moe = min(max(layout.n_cpu_moe, 0), n_layer)
    dense, experts = prof.dense, prof.experts
    e_cuda, e_host, e_host_alloc = experts.cuda, experts.host, experts.host_alloc
    d_cuda, rcount = dense.cuda, prof.recurrent_count
    repack = layout.cpu_repack and n_gpu == 0

    # host weights: input layer, host layers, experts kept on the host, output when it stays there
    host_plain = prof.input.host + dense.host[host_hi] + e_host[host_hi]
    host_alloc = prof.input.host_alloc + dense.host_alloc[host_hi] + e_host_alloc[host_hi]
    host_repack = dense.repack[host_hi] + experts.repack[host_hi]
    gpu_w = [0] * n_gpu
    gpu_kv = [0] * n_gpu
    gpu_rec = [0] * n_gpu
    n_ctx, cells, swa_cells = context_cells(ctx, prof.n_swa)
    n_stream = 1 if ctx.kv_unified else max(1, ctx.n_seq)
    full_p, swa_p = prof.kv_row_prefix(ctx.type_k, ctx.type_v, ctx.flash_attn)
    full_cells, swa_cells_all = cells * n_stream, swa_cells * n_stream
    rows = max(1, ctx.n_seq)
    rec_bytes = prof.recurrent_row_bytes * rows
    gpu_layer_count = 0
    for d, (lo, hi) in enumerate(ranges):
        if hi > lo:
            gpu_layer_count += hi - lo
        hi_l = min(hi, n_layer)
        if hi_l <= lo:
            continue
        moe_lo = max(lo, min(cpu_moe, hi_l))
        gpu_w[d] = d_cuda[hi_l] - d_cuda[lo] + e_cuda[hi_l] - e_cuda[moe_lo]
        if moe_lo > lo:
            host_plain += e_host[moe_lo] - e_host[lo]
            host_alloc += e_host_alloc[moe_lo] - e_host_alloc[lo]
        gpu_kv[d] = (full_p[hi_l] - full_p[lo]) * full_cells + (swa_p[hi_l] - swa_p[lo]) * swa_cells_all
        gpu_rec[d] = (rcount[hi_l] - rcount[lo]) * rec_bytes
    if out_dev >= 0:
        gpu_w[out_dev] += prof.output.cuda
    else:
        host_plain += prof.output.host
        host_alloc += prof.output.host_alloc
        host_repack += prof.output.repack
        host_alloc += prof.tied_copy_bytes  # the duplicated embedding matrix is a copy without mmap
    host_kv = full_p[host_hi] * full_cells + swa_p[host_hi] * swa_cells_all
    host_rec = rcount[host_hi] * rec_bytes
    if not repack:
        host_repack = 0
    host_weights = host_plain if layout.mmap else host_alloc

    pipeline = n_gpu > 1 and layout.gpu_layers > n_layer and cpu_moe == 0
    if layout.pipeline_parallel is not None:
        pipeline = n_gpu > 1 and layout.pipeline_parallel
    gpu_compute, host_compute = _compute(
        prof, ctx, n_ctx, cells, swa_cells, ranges, host_hi, out_dev, n_gpu, pipeline, cpu_moe > 0, spec=spec
    )
    overhead = gpu_overhead_bytes(backend) if overhead_bytes is None else overhead_bytes
    used = tuple([overhead if hi > lo else 0 for lo, hi in ranges]) if layout.gpu_layers > 0 else (overhead,) * n_gpu
    host_output = output_buffer_bytes(spec, ctx.n_seq)
    gpu_total = tuple([gpu_w[d] + gpu_kv[d] + gpu_rec[d] + gpu_compute[d] + used[d] for d in range(n_gpu)])
    # Breakdown's fields in order (positional: this runs once per placement probed)
    return Breakdown(
        tuple(gpu_w),
        tuple(gpu_kv),
        tuple(gpu_rec),
        gpu_compute,
        used,
        host_weights,
        host_repack,
        host_kv,
        host_rec,
        host_compute,
        host_output,
        n_ctx,
        gpu_layer_count,
        pipeline,
        gpu_total,
        host_weights + host_kv + host_rec + host_compute + host_output,
    )


_CLEARERS: list[Callable[[], None]] = []


def clear_caches() -> None:
    """Forget every memoised breakdown and layer split (they are pure; this only frees memory)."""
    for _ref, prof in list(_PROFILES.values()):
        prof._breakdowns.clear()
    _RANGES_CACHE.clear()
    for clear in _CLEARERS:
        clear()


def mapped_weights_bytes(spec: ModelSpec, layout: Layout) -> int:
    """The ``CPU_Mapped`` model buffer llama.cpp logs under mmap: per file, the byte range from the
    first to the last host tensor that is not repacked (``llama_model_loader::get_mapping_range``)."""
    prof = profile(spec)
    n_layer = prof.n_layer
    devs = layer_devices(n_layer, layout)
    cpu_moe = min(max(layout.n_cpu_moe, 0), n_layer)
    repack = layout.cpu_repack and layout.n_gpu == 0
    lo: dict[int, int] = {}
    hi: dict[int, int] = {}
    for t in spec.tensors:
        if t.layer is None:
            on_host = devs[n_layer] < 0 if _is_output(t) else True
        elif t.layer >= prof.trunk or t.layer >= n_layer:
            continue
        elif devs[t.layer] < 0:
            on_host = True
        else:
            on_host = t.role is TensorRole.ROUTED_EXPERTS and t.layer < cpu_moe
        if not on_host or (repack and _repackable(t)):
            continue
        lo[t.split] = min(lo.get(t.split, t.offset), t.offset)
        hi[t.split] = max(hi.get(t.split, t.offset + t.nbytes), t.offset + t.nbytes)
    return sum(hi[s] - lo[s] for s in lo)


# --------------------------------------------------------------------------------------------
# Compute buffers
# --------------------------------------------------------------------------------------------


def _compute(
    prof: Profile,
    ctx: Context,
    n_ctx: int,
    cells: int,
    swa_cells: int,
    ranges: Sequence[tuple[int, int]],
    host_hi: int,
    out_dev: int,
    n_gpu: int,
    pipeline: bool,
    experts_on_host: bool,
    spec: ModelSpec | None = None,
) -> tuple[tuple[int, ...], int]:
    """(compute buffer per GPU, host compute buffer) for the worst-case prompt graph.

    CPU-only (``n_gpu == 0``): when ``servefit.ggml_graph`` rebuilds the model's graph, the host
    buffer is ggml's allocator simulated tensor by tensor on it (exact against llama.cpp); the
    estimate below serves the other architectures and GPU machines.

    llama.cpp reserves the graph of one ubatch (``n_ubatch`` tokens) against the whole KV cache
    (``sched_reserve``) and ggml's allocator sizes each backend's buffer from the tensors alive at
    once. Modelled as the graph inputs (the KQ masks, one per attention kind, F16 with flash
    attention and F32 without; on GPU machines also the token-embedding gather, on the host) plus
    the largest stage, in F32 values per token of the ubatch:

    * attention without flash attention: the scores ``n_kv * n_head`` plus the residual, the
      normalised input, Q, K and V (``3 n_embd + 2 n_q + 2 n_embd_kv``);
    * attention with flash attention: ``3 n_embd + 2 n_q``;
    * dense FFN ``4 n_ff``; MoE ``n_embd + 3 n_expert_used n_ff_exp + 2 n_q``; Mamba-2
      ``2 d_in_proj + d_conv_channels + 3 n_embd``;
    * the output layer: logits plus the last hidden states, ``n_vocab + 3 n_embd`` on the CPU
      (``n_vocab + n_embd`` on a GPU); the masks are freed by then, so the CPU buffer is
      ``max(inputs + largest inner stage, output stage)``.

    With pipeline parallelism (several GPUs, full offload, no tensor overrides) the scheduler keeps
    ``GGML_SCHED_MAX_COPIES`` = 4 copies of every graph input and of every split input, flagged as
    outputs so that the allocator never reuses them (``ggml_backend_sched_split_graph``: the split-input
    copies and pass 6): on the host 3 more copies of the KQ masks (the published 8-GPU DeepSeek-R1 log:
    4 x 16 MiB masks + 14 MiB of embedded tokens); on every GPU 3 more copies of the residual stream
    ``[n_embd, n_ubatch]`` F32 it receives (the published 2-GPU Command-R log, to 0.01 MiB: its GPU
    line leaves no room for extra mask copies beyond what the stage estimate already covers).

    The stage sizes were read off llama.cpp's CPU compute buffers for synthetic models and the
    CUDA split off published logs (docs/accuracy.md).
    """
    n_ub = min(ctx.n_ubatch, ctx.n_batch, max(ctx.n_ctx, 1))  # capped by the context asked for, unpadded
    f = 4
    mask_b = 2 if ctx.flash_attn else 4
    masks = ((cells if prof.kv_full else 0) + (swa_cells if prof.kv_swa else 0)) * n_ub * mask_b
    n_kv = cells if prof.kv_full else (swa_cells if prof.kv_swa else 0)
    e = prof.n_embd
    q = prof.n_head_max * prof.head_dim_k
    kv = prof.n_head_kv_max * prof.head_dim_k
    attn = 0
    if prof.kv_full or prof.kv_swa:
        if ctx.flash_attn:
            attn = (3 * e + 2 * q) * n_ub * f
        else:
            attn = (n_kv * prof.n_head_max + 3 * e + 2 * q + 2 * kv) * n_ub * f
    ffn = 4 * prof.n_ff_max * n_ub * f
    moe = (e + 3 * prof.n_expert_used * prof.n_ff_exp + 2 * q) * n_ub * f if prof.n_expert_used else 0
    ssm = 0
    if prof.ssm_d_inner:
        conv = prof.ssm_d_inner + 2 * prof.ssm_n_group * prof.ssm_d_state
        ssm = (2 * (prof.ssm_d_inner + conv + prof.ssm_heads) + conv + 3 * e) * n_ub * f
    inner = max(attn, ffn, moe, ssm)
    out = (prof.n_vocab + 3 * e) * n_ub * f
    embd = e * n_ub * f
    if n_gpu == 0:
        if spec is not None:
            from servefit.ggml_graph import cpu_compute_bytes

            simulated = cpu_compute_bytes(
                spec,
                n_ubatch=n_ub,
                n_seq=ctx.n_seq,
                n_kv=cells if prof.kv_full or prof.kv_swa else 0,
                n_kv_swa=swa_cells if prof.kv_swa else 0,
                unified=ctx.kv_unified,
                flash_attn=ctx.flash_attn,
                type_k=ctx.type_k,
                type_v=ctx.type_v,
            )
            if simulated is not None:
                return (), _pad(simulated, HOST_ALIGNMENT)
        return (), _pad(max(masks + inner, out), HOST_ALIGNMENT)
    if ctx.flash_attn and (is_quantized_cache_type(ctx.type_k) or is_quantized_cache_type(ctx.type_v)):
        # CUDA flash attention converts a quantized K/V view of one layer to F16 scratch
        # (unslothai/unsloth#6718 measured it; the CPU kernel reads quantized K/V directly)
        n_stream = 1 if ctx.kv_unified else max(1, ctx.n_seq)
        inner += n_kv * n_stream * (kv + prof.n_head_kv_max * prof.head_dim_v) * 2
    gpu = [0] * n_gpu
    for d, (lo, hi) in enumerate(ranges):
        if min(hi, prof.n_layer) > lo:
            gpu[d] = inner
    if out_dev >= 0:
        # published CUDA logs show the logits stage as exactly (n_vocab + n_embd) values per token
        gpu[out_dev] = max(gpu[out_dev], (prof.n_vocab + e) * n_ub * f)
    extra_copies = SCHED_MAX_COPIES - 1 if pipeline else 0
    if extra_copies:
        gpu = [g + extra_copies * embd if g else 0 for g in gpu]
    host_stage = 0
    if host_hi > 0:
        host_stage = inner
    elif experts_on_host and moe:
        host_stage = moe
    host = masks * (1 + extra_copies) + max(embd, host_stage)
    if out_dev < 0:
        host = max(host, out)
    return tuple(_pad(g, CUDA_ALIGNMENT) for g in gpu), _pad(host, HOST_ALIGNMENT)


def compute_buffers(spec: ModelSpec, ctx: Context, layout: Layout) -> tuple[tuple[int, ...], int]:
    """(compute buffer per GPU, host compute buffer) llama.cpp reserves for this context and placement."""
    b = memory_breakdown(spec, ctx, layout)
    return b.gpu_compute, b.host_compute
