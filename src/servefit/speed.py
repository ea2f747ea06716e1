"""Speed and cost: decode and prefill tokens per second, time to first token, cost per million tokens.

The model is physical first, calibrated second. For one decode step it counts the bytes each
device must read — dense layer weights, the routed experts a token actually uses
(``n_expert_used / n_expert`` of the expert bytes), shared experts, the KV cache at the current
depth, the recurrent state — and divides them by the bandwidth of the memory that holds them
(GPU memory, host RAM for experts or layers kept on the CPU, disk for weights that do not fit in
RAM). Per-layer kernel overheads and the hop between GPUs are added. Prefill counts the FLOPs of
the active parameters and of attention against the device's dense FP16 throughput; weights that
live on the host are copied to the GPU for every micro-batch of 32 tokens or more (llama.cpp's
``op_offload``; for MoE weights only the experts the micro-batch touches,
``ggml-backend.cpp: ggml_backend_sched_compute_splits``), which makes prefill PCIe-bound.

Each ideal time is multiplied by an effective-efficiency factor. The factors are few (per backend,
plus one compute scale per GPU architecture family) and are fitted by ``bench/speed_accuracy.py``
on published llama-bench measurements; they live in ``catalog/data/speed_calibration.yaml`` with
the error they leave (median / 90th percentile / bias, leave-one-GPU-out), which every estimate
carries in ``plan.extra["speed"]``.

Placement follows llama.cpp (``src/llama-model.cpp: load_tensors``): with ``-ngl K`` the output
layer and the last ``K - 1`` repeating layers go to the GPUs (``i_gpu_start = n_layer + 1 - K``),
split between GPUs by ``tensor_split`` proportions; input embeddings stay on the host; the routed
experts of the first ``n_cpu_moe`` layers stay on the host.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from servefit.errors import CatalogError, OptionsError, UnknownQuantError
from servefit.machine import Backend, Device, Machine
from servefit.memory import cache_row_bytes, kv_layers, recurrent_bytes_per_sequence, recurrent_layers
from servefit.model import ModelSpec, TensorInfo, TensorRole
from servefit.plan import Options, Plan

__all__ = [
    "DEFAULT_PROMPT_TOKENS",
    "HOST",
    "RECOMMEND_QUANTS",
    "SORT_KEYS",
    "Calibration",
    "DecodeTerms",
    "Factors",
    "PrefillTerms",
    "backend_family",
    "compare",
    "cost_per_mtok",
    "decode_terms",
    "estimate",
    "family_of",
    "layer_locations",
    "load_calibration",
    "parse_calibration",
    "prefill_terms",
    "recommend",
    "tensor_peaks_tflops",
]

DEFAULT_PROMPT_TOKENS = 4096
HOST = -1  # location index of host RAM (GPUs are 0..n-1)
FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})
# llama.cpp copies host weights to the GPU for ops with a batch of at least this many tokens
# (ggml-cuda.cu: GGML_OP_OFFLOAD_MIN_BATCH, default 32).
OP_OFFLOAD_MIN_BATCH = 32

# Host-side constants. The calibration data has no CPU rows, so these are stated assumptions,
# not fits: llama.cpp's CPU decode reaches roughly 60-70% of the theoretical DRAM bandwidth when
# enough cores stream it; one core streams and dots about 10 GB/s of quantized weights (AVX2 /
# AVX-512 / NEON dot kernels); one core sustains about 40 GFLOP/s in prompt processing.
HOST_BANDWIDTH_EFFICIENCY = 0.65
HOST_CORE_STREAM_GB_S = 10.0
HOST_CORE_GFLOPS = 40.0
PCIE_EFFICIENCY = 0.8  # of the nominal host->device copy rate, for large pinned copies
DISK_EFFICIENCY = 0.8
HOST_SWITCH_S = 40e-6  # one GPU<->CPU hand-over inside a decode step (sync + small copy)
DISK_OS_RESERVE_BYTES = 2 * 1024**3  # RAM the OS and other processes keep out of the page cache

_CALIBRATION_FILE = "speed_calibration.yaml"


# --------------------------------------------------------------------------------------------
# calibration factors


@dataclass(frozen=True, slots=True)
class Factors:
    """Multipliers on ideal times (1 / effective efficiency) and fixed costs, for one backend family."""

    weights_quant: float = 1.5  # reading block-quantized weights at batch 1
    weights_float: float = 1.2  # reading F16/BF16/F32 weights at batch 1
    attention: float = 1.5  # reading the KV cache / recurrent state during decode, without flash attention
    attention_fa: float = 0.0  # the same with flash attention (0: not calibrated, use ``attention``)
    layer_s: float = 50e-6  # seconds per layer per decode step (kernel launches, syncs)
    hop_s: float = 200e-6  # seconds per GPU boundary crossed per step
    mm_quant: float = 2.5  # prefill matmul time of quantized weights vs dense FP16 peak
    mm_float: float = 2.0  # prefill matmul time of float weights vs dense FP16 peak
    attn_flops: float = 5.0  # prefill attention FLOPs vs dense FP16 peak, without flash attention
    attn_flops_fa: float = 0.0  # the same with flash attention (0: not calibrated, use ``attn_flops``)
    ubatch_s: float = 0.0  # fixed seconds per micro-batch (graph build, launches, syncs); not fitted
    # llama.cpp's kernels reach a smaller share of the peak on bigger GPUs: effective FLOPS are
    # peak / (1 + peak / sat_tflops) (0: no saturation)
    sat_tflops: float = 0.0
    # likewise for memory: effective bandwidth is bw / (1 + bw / sat_gb_s) (0: no saturation)
    sat_gb_s: float = 0.0

    def memory_scale(self, bandwidth_gb_s: float) -> float:
        """Multiplier on ideal GPU memory time for a device of ``bandwidth_gb_s`` (saturation)."""
        return 1.0 + bandwidth_gb_s / self.sat_gb_s if self.sat_gb_s > 0 else 1.0

    def compute_scale(self, peak_tflops: float) -> float:
        """Multiplier on ideal compute time for a device of ``peak_tflops`` (saturation)."""
        return 1.0 + peak_tflops / self.sat_tflops if self.sat_tflops > 0 else 1.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """Fitted factors per backend and compute scale per architecture family, with the error they leave."""

    backends: Mapping[str, Factors]
    family_scale: Mapping[str, float]  # "cuda-ada": multiplier on the prefill compute terms
    error: Mapping[str, Any]  # {"decode": {...}, "prefill": {...}} as written by the bench
    source: str = ""

    def factors(self, backend: str) -> Factors:
        return self.backends.get(backend) or self.backends.get("cuda") or Factors()

    def scale(self, family: str) -> float:
        return float(self.family_scale.get(family, 1.0))


@functools.cache
def load_calibration() -> Calibration:
    """The shipped calibration (``catalog/data/speed_calibration.yaml``); defaults if absent."""
    try:
        text = resources.files("servefit.catalog").joinpath("data", _CALIBRATION_FILE).read_text("utf-8")
    except (FileNotFoundError, OSError):
        return Calibration(backends={}, family_scale={}, error={}, source="built-in defaults (uncalibrated)")
    return parse_calibration(text, path=_CALIBRATION_FILE)


def parse_calibration(text: str, *, path: str = "<calibration>") -> Calibration:
    """Parse the calibration YAML; a malformed file is a CatalogError naming the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc})", path=path) from exc
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping at the top level", path=path)
    backends: dict[str, Factors] = {}
    names = {f.name for f in dataclasses.fields(Factors)}
    for name, values in (data.get("backends") or {}).items():
        if not isinstance(values, dict) or set(values) - names:
            unknown = sorted(set(values) - names) if isinstance(values, dict) else values
            raise CatalogError(f"{path}: backend {name!r}: unknown factors {unknown}", path=path, row=str(name))
        try:
            backends[str(name)] = Factors(**{k: float(v) for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"{path}: backend {name!r}: factors must be numbers", path=path) from exc
    scale = data.get("family_scale") or {}
    if not isinstance(scale, dict) or not all(isinstance(v, int | float) and v > 0 for v in scale.values()):
        raise CatalogError(f"{path}: family_scale must map families to positive numbers", path=path)
    return Calibration(
        backends=backends,
        family_scale={str(k): float(v) for k, v in scale.items()},
        error=dict(data.get("error") or {}),
        source=str(data.get("source", "")),
    )


def backend_family(machine: Machine) -> str:
    """The calibration backend of a machine: "cuda", "metal", "rocm", "vulkan" or "cpu"."""
    if not machine.devices or machine.backend is Backend.CPU:
        return "cpu"
    if machine.backend in (Backend.CUDA12, Backend.CUDA13):
        return "cuda"
    return str(machine.backend)


def family_of(machine: Machine, device: Device | None = None) -> str:
    """GPU architecture family: "cuda-ampere", "cuda-ada", "cuda-hopper", "cuda-blackwell", "metal", ..."""
    backend = backend_family(machine)
    dev = device or (machine.devices[0] if machine.devices else None)
    if backend != "cuda" or dev is None or not dev.compute_capability:
        return backend
    try:
        major, _, minor = dev.compute_capability.partition(".")
        cc = (int(major), int(minor or 0))
    except ValueError:
        return backend
    if cc >= (10, 0):
        return "cuda-blackwell"
    if cc >= (9, 0):
        return "cuda-hopper"
    if cc == (8, 9):
        return "cuda-ada"
    if cc >= (8, 0):
        return "cuda-ampere"
    return "cuda-older"


# --------------------------------------------------------------------------------------------
# where every tensor lives


def _full_offload(plan: Plan, n_layer: int) -> bool:
    return plan.gpu_layers >= n_layer + 1 or (plan.total_layers > 0 and plan.gpu_layers >= plan.total_layers)


def layer_locations(plan: Plan, spec: ModelSpec, machine: Machine) -> tuple[list[int], int]:
    """Device index of every repeating layer (HOST for the CPU) and of the output layer."""
    n_layer = spec.hparams.n_layer
    n_dev = len(machine.devices)
    if n_dev == 0 or plan.gpu_layers <= 0:
        return [HOST] * n_layer, HOST
    ngl = n_layer + 1 if _full_offload(plan, n_layer) else plan.gpu_layers
    start = max(n_layer + 1 - ngl, 0)
    active = min(ngl, n_layer + 1)
    weights = list(plan.tensor_split[:n_dev]) if len(plan.tensor_split) >= n_dev else []
    if not weights or sum(weights) <= 0:
        weights = [float(d.memory_bytes) for d in machine.devices]
    cumulative: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    splits = [c / total for c in cumulative]

    def where(il: int) -> int:
        if il < start:
            return HOST
        return min(bisect.bisect_right(splits, (il - start) / active), n_dev - 1)

    return [where(il) for il in range(n_layer)], where(n_layer)


def _tensor_location(t: _Group, layers: list[int], output: int, n_cpu_moe: int) -> int:
    if t.role is TensorRole.EMBEDDING:
        return HOST
    if t.layer is None or t.layer >= len(layers):
        return output
    if t.role is TensorRole.ROUTED_EXPERTS and t.layer < n_cpu_moe:
        return HOST
    return layers[t.layer]


@dataclass(frozen=True, slots=True)
class _Group:
    """The tensors of one layer that share a role and a float/quantized kind, summed."""

    layer: int | None
    role: TensorRole
    is_float: bool
    nbytes: int
    n_elements: int


@dataclass(frozen=True, slots=True)
class _Summary:
    groups: tuple[_Group, ...]
    moe_layers: frozenset[int]


_SUMMARIES: dict[int, tuple[weakref.ref[ModelSpec], _Summary]] = {}


def _summary(spec: ModelSpec) -> _Summary:
    """Tensors grouped per (layer, role, kind), computed once per ModelSpec object."""
    hit = _SUMMARIES.get(id(spec))
    if hit is not None and hit[0]() is spec:
        return hit[1]
    sums: dict[tuple[int | None, TensorRole, bool], list[int]] = {}
    for t in spec.tensors:
        acc = sums.setdefault((t.layer, t.role, _is_float(t)), [0, 0])
        acc[0] += t.nbytes
        acc[1] += t.n_elements
    groups = tuple(_Group(k[0], k[1], k[2], v[0], v[1]) for k, v in sums.items())
    moe = frozenset(g.layer for g in groups if g.role is TensorRole.ROUTED_EXPERTS and g.layer is not None)
    summary = _Summary(groups, moe)
    if len(_SUMMARIES) > 256:
        _SUMMARIES.clear()
    _SUMMARIES[id(spec)] = (weakref.ref(spec), summary)
    return summary


def _expert_fraction(spec: ModelSpec, tokens: int) -> float:
    """Share of a layer's routed-expert bytes that ``tokens`` independent tokens touch."""
    hp = spec.hparams
    if hp.n_expert <= 0 or hp.n_expert_used <= 0:
        return 1.0
    p = min(hp.n_expert_used / hp.n_expert, 1.0)
    return 1.0 - (1.0 - p) ** max(tokens, 1)


def _is_float(t: TensorInfo) -> bool:
    return t.ggml_type.upper() in FLOAT_TYPES


def _host_bandwidth_gb_s(machine: Machine) -> float:
    cores = max(machine.cpu_cores, 1)
    return min(machine.ram_bandwidth_gb_s * HOST_BANDWIDTH_EFFICIENCY, cores * HOST_CORE_STREAM_GB_S)


def tensor_peaks_tflops(device: Device, machine: Machine) -> tuple[float, float]:
    """(quantized, float) matmul peaks of a GPU as llama.cpp uses it, in TFLOPS.

    On NVIDIA, quantized weights go through the MMQ kernels on INT8 tensor cores, and F16/BF16
    weights through cuBLAS with an FP16 compute type (``ggml-cuda.cu: ggml_cuda_op_mul_mat_cublas``),
    whose rate is half the INT8 rate on every tensor-core generation: GeForce cards included, whose
    datasheet FP16 figure is quoted with FP32 accumulation at half that rate. Without an INT8 figure
    (and off NVIDIA) both peaks are the device's dense FP16 figure, doubled for quantized on CUDA.
    """
    fp16 = max(device.fp16_tflops, 1e-3)
    if backend_family(machine) != "cuda":
        return fp16, fp16
    if device.int8_tops > 0:
        return device.int8_tops, device.int8_tops / 2.0
    return 2.0 * fp16, fp16


def _disk_fraction(plan: Plan, host_weight_bytes: int) -> float:
    """Share of host-resident weights that must come from disk at each use (0 unless reading from disk)."""
    if not plan.reading_from_disk or host_weight_bytes <= 0:
        return 0.0
    host = next((d for d in plan.devices if d.kind == "host"), None)
    if host is not None:
        other = host.total_bytes - host.weights_bytes  # KV, compute buffers, ... that are not page cache
    else:
        other = max(plan.ram_required_bytes - host_weight_bytes, 0)
    # the page cache keeps what RAM is left after the other buffers and the OS reserve
    cache = max(plan.ram_total_bytes - other - DISK_OS_RESERVE_BYTES, 0)
    return max(0.0, min(1.0, 1.0 - cache / host_weight_bytes))


# --------------------------------------------------------------------------------------------
# decode


@dataclass(frozen=True, slots=True)
class DecodeTerms:
    """Ideal seconds of one decode step, by kind, before efficiency factors."""

    gpu_quant_s: float = 0.0  # quantized weights read on GPUs (summed over GPUs: layers run in turn)
    gpu_float_s: float = 0.0  # float weights read on GPUs
    gpu_attn_s: float = 0.0  # KV cache and recurrent state read/written on GPUs
    gpu_layers: int = 0  # layers computed on a GPU (kernel overheads)
    hops: int = 0  # GPU boundaries crossed per step
    host_switches: int = 0  # GPU<->CPU hand-overs per step
    host_s: float = 0.0  # bytes on the host at effective host bandwidth (CPU computes them)
    disk_s: float = 0.0  # bytes re-read from disk
    compute_s: float = 0.0  # matmul FLOPs at the GPUs' tensor peaks (matters only with many streams)
    peak_tflops: float = 0.0  # the GPUs' float tensor peak (for the compute saturation)
    bandwidth_gb_s: float = 0.0  # the GPUs' memory bandwidth (for the memory saturation)
    host_layers: int = 0  # repeating layers wholly on the CPU
    host_expert_layers: int = 0  # layers whose routed experts stay on the CPU
    flash_attention: bool = False

    def gpu_memory_s(self, f: Factors) -> float:
        attention = f.attention_fa if self.flash_attention and f.attention_fa > 0 else f.attention
        ideal = self.gpu_quant_s * f.weights_quant + self.gpu_float_s * f.weights_float + self.gpu_attn_s * attention
        return ideal * f.memory_scale(self.bandwidth_gb_s)

    def seconds(self, f: Factors) -> float:
        # weights are streamed and multiplied by the same kernels: with many streams the matmul time
        # adds to the read time (llama-batched-bench on GB10 fits a sum far better than a max)
        compute = self.compute_s * f.mm_quant * f.compute_scale(self.peak_tflops)
        return (
            self.gpu_memory_s(f)
            + compute
            + self.gpu_layers * f.layer_s
            + self.hops * f.hop_s
            + self.host_switches * HOST_SWITCH_S
            + self.host_s
            + self.disk_s
        )


def _attention_bytes_per_layer(spec: ModelSpec, plan: Plan, depth: int) -> dict[int, float]:
    """Bytes of K, V (and recurrent state) one stream reads per layer in one decode step at ``depth``."""
    hp = spec.hparams
    out: dict[int, float] = {}
    for il, per_cell, swa, state in _attention_rows(spec, plan.cache_type_k, plan.cache_type_v, plan.flash_attention):
        cells = min(depth, hp.n_swa) if swa else depth
        out[il] = per_cell * cells + state
    return out


_ATTENTION: dict[tuple[int, str, str, bool], tuple[weakref.ref[ModelSpec], list[tuple[int, float, bool, float]]]] = {}


def _attention_rows(spec: ModelSpec, type_k: str, type_v: str, flash: bool) -> list[tuple[int, float, bool, float]]:
    """(layer, bytes per cached token, sliding window?, recurrent bytes per step) per layer with a cache.

    With flash attention each KV head is read once; without it llama.cpp multiplies K and V per
    query head (GQA broadcast) and writes and reads an F32 score row per head. Recurrent state is
    read and written once per step.
    """
    key = (id(spec), type_k, type_v, flash)
    hit = _ATTENTION.get(key)
    if hit is not None and hit[0]() is spec:
        return hit[1]
    hp = spec.hparams
    mla = hp.n_embd_head_k_mla > 0 and hp.n_embd_head_v_mla > 0
    rows: dict[int, tuple[float, bool, float]] = {}
    for il in kv_layers(spec):
        n_kv = hp.n_head_kv[il] if il < len(hp.n_head_kv) else 0
        n_q = hp.n_head[il] if il < len(hp.n_head) else n_kv
        if n_kv <= 0:
            continue
        swa = bool(hp.swa_layers) and il < len(hp.swa_layers) and hp.swa_layers[il] and hp.n_swa > 0
        k_row = _row_bytes(type_k, hp.n_embd_head_k * n_kv)
        v_row = 0 if mla else _row_bytes(type_v, hp.n_embd_head_v * n_kv)
        per_cell = float(k_row + v_row)
        if not flash:
            per_cell = per_cell * max(n_q // n_kv, 1) + 2 * 4 * n_q
        rows[il] = (per_cell, swa, 0.0)
    rec = recurrent_layers(spec)
    if rec:
        per_layer = recurrent_bytes_per_sequence(spec) / len(rec)
        for il in rec:
            cell, swa, _ = rows.get(il, (0.0, False, 0.0))
            rows[il] = (cell, swa, 2.0 * per_layer)
    out = [(il, *v) for il, v in sorted(rows.items())]
    if len(_ATTENTION) > 1024:
        _ATTENTION.clear()
    _ATTENTION[key] = (weakref.ref(spec), out)
    return out


def _row_bytes(cache_type: str, n: int) -> int:
    if n <= 0:
        return 0
    try:
        return cache_row_bytes(cache_type, n)
    except OptionsError:  # a width that is not a multiple of the block: count it as F16
        return 2 * n


def decode_terms(plan: Plan, spec: ModelSpec, machine: Machine, *, depth: int, streams: int = 1) -> DecodeTerms:
    """Ideal times of one decode step for ``streams`` sequences each ``depth`` tokens deep."""
    streams = max(streams, 1)
    layers, output = layer_locations(plan, spec, machine)
    n_cpu_moe = plan.n_cpu_moe if machine.devices else spec.hparams.n_layer
    devs = machine.devices
    frac = _expert_fraction(spec, streams)
    per_dev_quant = [0.0] * len(devs)
    per_dev_float = [0.0] * len(devs)
    per_dev_attn = [0.0] * len(devs)
    per_dev_flops = [0.0] * len(devs)
    host_bytes = 0.0
    host_weight_bytes = 0
    used = spec.hparams.n_expert_used / spec.hparams.n_expert if spec.hparams.n_expert else 1.0
    summary = _summary(spec)
    peaks = [tensor_peaks_tflops(d, machine) for d in devs]
    for t in summary.groups:
        loc = _tensor_location(t, layers, output, n_cpu_moe)
        if loc == HOST:
            host_weight_bytes += t.nbytes
        if t.role is TensorRole.EMBEDDING:
            continue  # a lookup of one row per token
        read = t.nbytes * (frac if t.role is TensorRole.ROUTED_EXPERTS else 1.0)
        flops = 2.0 * t.n_elements * streams * (used if t.role is TensorRole.ROUTED_EXPERTS else 1.0)
        if loc == HOST:
            host_bytes += read
        elif t.is_float:
            per_dev_float[loc] += read
            per_dev_flops[loc] += flops / (peaks[loc][1] * 1e12)
        else:
            per_dev_quant[loc] += read
            per_dev_flops[loc] += flops / (peaks[loc][0] * 1e12)
    for il, nbytes in _attention_bytes_per_layer(spec, plan, depth).items():
        loc = layers[il] if il < len(layers) else HOST
        if loc == HOST:
            host_bytes += nbytes * streams
        else:
            per_dev_attn[loc] += nbytes * streams
    disk_frac = _disk_fraction(plan, host_weight_bytes)
    host_bw = _host_bandwidth_gb_s(machine) * 1e9
    disk_bw = max(machine.disk_read_gb_s, 1e-3) * DISK_EFFICIENCY * 1e9
    gpu_layers = sum(1 for loc in layers if loc != HOST)
    used_devs = sorted({loc for loc in [*layers, output] if loc != HOST})
    host_expert_layers = 0
    if machine.devices and spec.is_moe:
        host_expert_layers = sum(1 for il in summary.moe_layers if il < n_cpu_moe and layers[il] != HOST)
    host_layers = sum(1 for loc in layers if loc == HOST)
    switches = 2 * host_expert_layers + (2 if host_layers and gpu_layers else 0)
    return DecodeTerms(
        gpu_quant_s=sum(b / (d.bandwidth_gb_s * 1e9) for b, d in zip(per_dev_quant, devs, strict=True)),
        gpu_float_s=sum(b / (d.bandwidth_gb_s * 1e9) for b, d in zip(per_dev_float, devs, strict=True)),
        gpu_attn_s=sum(b / (d.bandwidth_gb_s * 1e9) for b, d in zip(per_dev_attn, devs, strict=True)),
        gpu_layers=gpu_layers,
        hops=max(len(used_devs) - 1, 0),
        host_switches=switches,
        host_s=host_bytes * (1.0 - disk_frac) / host_bw,
        disk_s=host_bytes * disk_frac / disk_bw,
        compute_s=sum(per_dev_flops),
        peak_tflops=max((p[1] for p in peaks), default=0.0),
        bandwidth_gb_s=max((d.bandwidth_gb_s for d in devs), default=0.0),
        host_layers=host_layers,
        host_expert_layers=host_expert_layers,
        flash_attention=plan.flash_attention,
    )


# --------------------------------------------------------------------------------------------
# prefill


@dataclass(frozen=True, slots=True)
class PrefillTerms:
    """Ideal seconds to process one prompt, by kind, before efficiency factors."""

    mm_quant_s: float = 0.0  # matmul FLOPs of quantized weights at the quantized peak (GPU)
    mm_float_s: float = 0.0  # ... of float weights at the float peak
    attn_s: float = 0.0  # attention FLOPs at the float peak (GPU)
    weights_s: float = 0.0  # GPU weights read once per micro-batch
    ubatches: int = 0  # micro-batches (fixed costs)
    pipeline: float = 1.0  # multi-GPU pipeline factor on the GPU terms (1 = no overlap)
    pcie_s: float = 0.0  # host weights copied to the GPU per micro-batch
    cpu_s: float = 0.0  # work the CPU does itself (CPU-only plans, or micro-batches under 32)
    disk_s: float = 0.0  # host weights re-read from disk for every micro-batch (reading from disk)
    hops: int = 0
    tokens: int = 0
    peak_tflops: float = 0.0  # the GPUs' float tensor peak (for the compute saturation)
    flash_attention: bool = False

    def seconds(self, f: Factors, scale: float = 1.0) -> float:
        attn = f.attn_flops_fa if self.flash_attention and f.attn_flops_fa > 0 else f.attn_flops
        compute = self.mm_quant_s * f.mm_quant + self.mm_float_s * f.mm_float + self.attn_s * attn
        gpu = (
            compute * scale * f.compute_scale(self.peak_tflops)
            + self.weights_s * f.weights_quant
            + self.ubatches * (f.ubatch_s + self.hops * f.hop_s)
        )
        return gpu * self.pipeline + self.pcie_s + self.cpu_s + self.disk_s


def prefill_terms(plan: Plan, spec: ModelSpec, machine: Machine, *, prompt: int, depth: int = 0) -> PrefillTerms:
    """Ideal times to process a ``prompt``-token prompt after ``depth`` cached tokens, as llama.cpp batches it."""
    hp = spec.hparams
    prompt = max(prompt, 1)
    ubatch = max(min(plan.ubatch or 512, plan.batch or 2048, prompt), 1)
    batch = max(min(plan.batch or 2048, prompt), ubatch)
    n_ub = math.ceil(prompt / ubatch)
    layers, output = layer_locations(plan, spec, machine)
    n_cpu_moe = plan.n_cpu_moe if machine.devices else hp.n_layer
    devs = machine.devices
    used = hp.n_expert_used / hp.n_expert if hp.n_expert else 1.0
    touched = _expert_fraction(spec, ubatch)
    offload = bool(devs) and ubatch >= OP_OFFLOAD_MIN_BATCH
    mm_q = [0.0] * len(devs)
    mm_f = [0.0] * len(devs)
    attn = [0.0] * len(devs)
    wread = [0.0] * len(devs)
    host_copy = 0.0
    host_read = 0.0  # host-resident weight bytes read over the whole prompt (copied or used by the CPU)
    host_weight_bytes = 0
    cpu_flops = 0.0
    for t in _summary(spec).groups:
        loc = _tensor_location(t, layers, output, n_cpu_moe)
        if loc == HOST:
            host_weight_bytes += t.nbytes
        if t.role is TensorRole.EMBEDDING:
            continue
        is_exp = t.role is TensorRole.ROUTED_EXPERTS
        flops = 2.0 * t.n_elements * (used if is_exp else 1.0) * prompt
        if loc == HOST:
            host_read += t.nbytes * (touched if is_exp else 1.0) * n_ub
            if offload:
                host_copy += t.nbytes * (touched if is_exp else 1.0) * n_ub
                loc = 0  # the op runs on the main GPU
            else:
                cpu_flops += flops
                continue
        (mm_f if t.is_float else mm_q)[loc] += flops
        wread[loc] += t.nbytes * (touched if is_exp else 1.0) * n_ub
    # attention: QK^T and AV, 2 FLOPs per multiply-add, over the average attended span
    for il in kv_layers(spec):
        n_q = hp.n_head[il] if il < len(hp.n_head) else 0
        swa = bool(hp.swa_layers) and il < len(hp.swa_layers) and hp.swa_layers[il] and hp.n_swa > 0
        span = depth + (prompt + 1) / 2.0
        if swa:
            span = min(span, float(hp.n_swa))
        flops = 2.0 * n_q * (hp.n_embd_head_k + hp.n_embd_head_v) * span * prompt
        loc = layers[il] if il < len(layers) else HOST
        if loc == HOST and not offload:
            cpu_flops += flops
        else:
            attn[max(loc, 0)] += flops
    peaks = [tensor_peaks_tflops(d, machine) for d in devs]
    mm_q_s = [fl / (p[0] * 1e12) for fl, p in zip(mm_q, peaks, strict=True)]
    mm_f_s = [fl / (p[1] * 1e12) for fl, p in zip(mm_f, peaks, strict=True)]
    attn_s = [fl / (p[1] * 1e12) for fl, p in zip(attn, peaks, strict=True)]
    w_s = [b / (d.bandwidth_gb_s * 1e9) for b, d in zip(wread, devs, strict=True)]
    used_devs = sorted({loc for loc in [*layers, output] if loc != HOST})
    pipeline = 1.0
    pipelined = len(used_devs) > 1 and _full_offload(plan, hp.n_layer) and plan.n_cpu_moe == 0 and batch > ubatch
    if pipelined:
        stage = [mm_q_s[i] + mm_f_s[i] + attn_s[i] for i in range(len(devs))]
        total = sum(stage)
        if total > 0:
            per_batch = math.ceil(batch / ubatch)
            pipeline = (total + (per_batch - 1) * max(stage)) / (per_batch * total)
    pcie = max((d.pcie_gb_s for d in devs), default=0.0) * PCIE_EFFICIENCY * 1e9
    cores = max(machine.cpu_cores, 1)
    return PrefillTerms(
        mm_quant_s=sum(mm_q_s),
        mm_float_s=sum(mm_f_s),
        attn_s=sum(attn_s),
        weights_s=sum(w_s),
        ubatches=n_ub if devs else 0,
        pipeline=pipeline,
        pcie_s=host_copy / pcie if pcie > 0 else 0.0,
        disk_s=host_read
        * _disk_fraction(plan, host_weight_bytes)
        / (max(machine.disk_read_gb_s, 1e-3) * DISK_EFFICIENCY * 1e9),
        cpu_s=cpu_flops / (cores * HOST_CORE_GFLOPS * 1e9),
        hops=max(len(used_devs) - 1, 0),
        tokens=prompt,
        peak_tflops=max((p[1] for p in peaks), default=0.0),
        flash_attention=plan.flash_attention,
    )


# --------------------------------------------------------------------------------------------
# the plan's figures


def cost_per_mtok(price_per_hour: float | None, tok_s: float | None) -> float | None:
    """Price of one million generated tokens at ``tok_s`` tokens/s on a target billed ``price_per_hour``."""
    if price_per_hour is None or tok_s is None or tok_s <= 0:
        return None
    return price_per_hour / (tok_s * 3600.0) * 1e6


def _bottleneck(plan: Plan, spec: ModelSpec, machine: Machine, terms: DecodeTerms, f: Factors) -> str:
    parts = {
        "gpu": terms.gpu_memory_s(f),
        "overhead": terms.gpu_layers * f.layer_s + terms.hops * f.hop_s + terms.host_switches * HOST_SWITCH_S,
        "host": terms.host_s,
        "disk": terms.disk_s,
    }
    top = max(parts, key=lambda k: parts[k])
    if top == "disk":
        return "disk: weights read from disk"
    if top == "host":
        if not machine.devices:
            return f"host RAM bandwidth: CPU only ({machine.cpu_cores} cores)"
        if terms.host_layers:
            return f"host RAM bandwidth: {terms.host_layers} of {spec.hparams.n_layer} layers on CPU"
        moe_layers = plan.moe_layers or len(_summary(spec).moe_layers)
        return f"host RAM bandwidth: {terms.host_expert_layers} of {moe_layers} expert layers on CPU"
    if top == "overhead":
        return f"kernel overhead: {terms.gpu_layers} layers per token, few bytes read per layer"
    names = sorted({d.name for d in machine.devices})
    label = names[0] if len(names) == 1 else ", ".join(names)
    if terms.hops:
        return f"GPU memory bandwidth ({len(machine.devices)}x {label}, layers split)"
    return f"GPU memory bandwidth ({label})"


def estimate(plan: Plan, spec: ModelSpec, machine: Machine) -> Plan:
    """The plan with its speed and cost fields filled (``dataclasses.replace``); unchanged if it does not fit."""
    prompt = plan.prompt_tokens or DEFAULT_PROMPT_TOKENS
    if plan.context > 0:
        prompt = min(prompt, plan.context)  # a prompt longer than the context cannot be served
    price = machine.price_per_hour
    if not plan.fits or spec.hparams.n_layer <= 0:
        return dataclasses.replace(plan, prompt_tokens=prompt, price_per_hour=price, currency=machine.currency)
    cal = load_calibration()
    backend = backend_family(machine)
    f = cal.factors(backend)
    scale = cal.scale(family_of(machine))
    depth = prompt  # decode right after the stated prompt
    one = decode_terms(plan, spec, machine, depth=depth)
    decode = 1.0 / one.seconds(f)
    parallel = max(plan.parallel, 1)
    many = decode_terms(plan, spec, machine, depth=depth, streams=parallel) if parallel > 1 else one
    decode_parallel = parallel / many.seconds(f)
    pre = prefill_terms(plan, spec, machine, prompt=prompt)
    prefill_s = pre.seconds(f, scale)
    prefill = prompt / prefill_s
    bottleneck = _bottleneck(plan, spec, machine, one, f)
    if pre.disk_s > 0.5 * prefill_s and not bottleneck.startswith("disk"):
        bottleneck += "; prefill: disk: weights read from disk"
    elif pre.pcie_s > 0.5 * prefill_s:
        what = "experts" if spec.is_moe and one.host_layers == 0 else "layers"
        bottleneck += f"; prefill: PCIe: {what} copied per micro-batch"
    extra = dict(plan.extra)
    extra["speed"] = {
        "decode_depth_tokens": depth,
        "decode_step_s": dataclasses.asdict(one),
        "prefill_s": dataclasses.asdict(pre),
        "calibration": {"backend": backend, "family": family_of(machine), "source": cal.source},
        "expected_error": dict(cal.error.get(backend, {})) or {"note": "no calibration data for this backend"},
    }
    return dataclasses.replace(
        plan,
        decode_tok_s=decode,
        decode_tok_s_parallel=decode_parallel,
        prefill_tok_s=prefill,
        ttft_s=prefill_s + 1.0 / decode,
        prompt_tokens=prompt,
        cost_per_mtok=cost_per_mtok(price, decode),
        cost_per_mtok_parallel=cost_per_mtok(price, decode_parallel),
        price_per_hour=price,
        currency=machine.currency,
        bottleneck=bottleneck,
        extra=extra,
    )


# --------------------------------------------------------------------------------------------
# where should I run this

SORT_KEYS = ("cost", "price", "decode", "prefill")
# Quantizations recommend() weighs, best quality first; per target it keeps the first that fits and
# meets the bar. Nothing below about 4.25 bits per weight is recommended unasked. Models released in
# MXFP4 (gpt-oss) are offered their native format first.
RECOMMEND_QUANTS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS")
NATIVE_QUANTS = {"gpt-oss": "MXFP4_MOE"}


def _sort_key(plan: Plan, sort: str) -> tuple[float, ...]:
    inf = math.inf
    if sort == "price":
        return (plan.price_per_hour if plan.price_per_hour is not None else inf, -(plan.decode_tok_s or 0.0))
    if sort == "decode":
        return (-(plan.decode_tok_s or 0.0),)
    if sort == "prefill":
        return (-(plan.prefill_tok_s or 0.0),)
    return (plan.cost_per_mtok if plan.cost_per_mtok is not None else inf, -(plan.decode_tok_s or 0.0))


def _plan_all(
    spec: ModelSpec,
    machines: list[Machine],
    *,
    min_context: int | None,
    min_tok_s: float | None,
) -> list[Plan]:
    from servefit.planner import make_plan

    options = Options(context=min_context) if min_context else Options()
    out: list[Plan] = []
    for machine in machines:
        plan = make_plan(spec, machine, options)
        if not plan.fits:
            continue
        if plan.decode_tok_s is None:
            plan = estimate(plan, spec, machine)
        if min_context and plan.context < min_context:
            continue
        if min_tok_s is not None and (plan.decode_tok_s or 0.0) < min_tok_s:
            continue
        out.append(plan)
    return out


def _targets(max_price: float | None, provider: str | None) -> list[Machine]:
    from servefit.hardware import list_targets

    out: list[Machine] = []
    for m in list_targets():
        if provider and provider.lower() not in (m.provider.lower(), m.id.split("/")[0].lower()):
            continue
        if max_price is not None and (m.price_per_hour is None or m.price_per_hour > max_price):
            continue
        out.append(m)
    return out


def _resolve(model_id: str, quant: str) -> ModelSpec:
    try:
        from servefit.resolve import resolve_model
    except ImportError:
        from servefit.catalog.models import model_spec

        spec: ModelSpec = model_spec(model_id, quant)
        return spec
    return resolve_model(model_id, quant)


def compare(
    model_id: str,
    quant: str,
    *,
    min_context: int | None = None,
    min_tok_s: float | None = None,
    max_price: float | None = None,
    provider: str | None = None,
    sort: str = "cost",
) -> list[Plan]:
    """Every catalog target that runs ``model_id`` at ``quant`` and meets the bar, ranked (cost per Mtok first)."""
    if sort not in SORT_KEYS:
        raise OptionsError(f"unknown sort {sort!r}: expected one of {', '.join(SORT_KEYS)}", option="sort")
    spec = _resolve(model_id, quant)
    plans = _plan_all(spec, _targets(max_price, provider), min_context=min_context, min_tok_s=min_tok_s)
    return sorted(plans, key=lambda p: _sort_key(p, sort))


def recommend(
    model_id: str,
    *,
    min_context: int | None = None,
    min_tok_s: float | None = None,
    runner_ups: int = 4,
) -> list[Plan]:
    """The cheapest target and quant that meet the bar (first), then runner-ups on other targets.

    For each target the best-quality quant of ``RECOMMEND_QUANTS`` that fits and meets the bar is
    kept; targets are then ranked by cost per million tokens (unpriced targets last, by speed).
    """
    machines = _targets(None, None)
    best: dict[str, Plan] = {}
    native = NATIVE_QUANTS.get(_resolve(model_id, "Q4_K_M").architecture)
    for quant in (native, *RECOMMEND_QUANTS) if native else RECOMMEND_QUANTS:
        try:
            spec = _resolve(model_id, quant)
        except UnknownQuantError:
            continue  # the model has no such quantization
        todo = [m for m in machines if m.id not in best]
        for plan in _plan_all(spec, todo, min_context=min_context, min_tok_s=min_tok_s):
            best.setdefault(plan.target_id, plan)
    ranked = sorted(best.values(), key=lambda p: _sort_key(p, "cost"))
    return ranked[: runner_ups + 1]
