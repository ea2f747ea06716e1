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
import itertools
import math
import operator
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import yaml

from servefit import memory as memory_module
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

    # the device index only grows with the layer: find where each GPU's run ends by bisection
    # (layer il is past GPU d when (il - start) / active >= splits[d], the test bisect_right makes)
    out = [HOST] * min(start, n_layer)
    lo = min(start, n_layer)
    for d in range(n_dev - 1):
        a, b = lo, n_layer
        while a < b:
            mid = (a + b) // 2
            if (mid - start) / active >= splits[d]:
                b = mid
            else:
                a = mid + 1
        out += [d] * (a - lo)
        lo = a
    out += [n_dev - 1] * (n_layer - lo)
    return out, where(n_layer)


def _tensor_location(t: _Group, layers: Sequence[int], output: int, n_cpu_moe: int) -> int:
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
    moe_sorted: tuple[int, ...] = ()  # moe_layers in order
    is_moe: bool = False  # any routed-expert tensor (ModelSpec.is_moe)


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
    summary = _Summary(groups, moe, tuple(sorted(moe)), any(g.role is TensorRole.ROUTED_EXPERTS for g in groups))
    if len(_SUMMARIES) > 256:
        _SUMMARIES.clear()
    _SUMMARIES[id(spec)] = (weakref.ref(spec), summary)
    return summary


# --------------------------------------------------------------------------------------------
# fast sums: the same additions in the same order, without a loop over tensor groups per plan
#
# The reference loops (``_decode_sums``, ``_prefill_sums``) add one term per tensor group to the
# accumulator of the device the group lives on. A device's groups are a few contiguous runs of
# the group order (a layer range, its non-expert or its expert groups, the output groups), so the
# same floating-point sums are left folds of per-group term arrays over those runs (a term of 0.0
# stands for a group another device takes: adding 0.0 changes no sum). Term arrays are built once
# per spec and parameters; folds are memoised by (array, run, starting value).


@dataclass(frozen=True, slots=True)
class _MachineInfo:
    """Per-machine figures every estimate uses (computed once per Machine object)."""

    machine: Machine
    backend: str
    family: str
    peaks: tuple[tuple[float, float], ...]  # tensor_peaks_tflops per GPU
    sig: int  # equal for machines whose every figure an estimate reads is equal (price aside)
    gpu_sig: int  # equal for machines with the same backend and GPUs (all that counts with no byte on the host)
    memories: tuple[int, ...]  # memory_bytes per GPU
    peaks_id: int  # equal for equal ``peaks``
    bandwidths: tuple[float, ...]  # bandwidth_gb_s * 1e9 per GPU (bytes/s)
    host_gb_s: float  # _host_bandwidth_gb_s


_MACHINES: dict[int, _MachineInfo] = {}
_SIGNATURES: dict[tuple[object, ...], int] = {}
_SIGNATURE_IDS = itertools.count()


def _signature(machine: Machine, *, gpus_only: bool = False) -> int:
    """A number naming the machine's hardware (backend, devices, cores, RAM and disk bandwidth; with
    ``gpus_only``, backend and devices): equal numbers, equal speed figures. Numbers are never reused,
    so forgetting the table is always safe."""
    sig: tuple[object, ...]
    if gpus_only:
        sig = ("gpus", machine.backend, machine.devices)
    else:
        sig = (machine.backend, machine.devices, machine.cpu_cores, machine.ram_bandwidth_gb_s, machine.disk_read_gb_s)
    hit = _SIGNATURES.get(sig)
    if hit is None:
        if len(_SIGNATURES) > 65536:
            _SIGNATURES.clear()
        hit = _SIGNATURES[sig] = next(_SIGNATURE_IDS)
    return hit


_INTERNED: dict[object, int] = {}


def _intern(value: object) -> int:
    """A number per distinct hashable ``value`` (a short memo key for a nested tuple); never reused."""
    hit = _INTERNED.get(value)
    if hit is None:
        if len(_INTERNED) > 65536:
            _INTERNED.clear()
        hit = _INTERNED[value] = next(_SIGNATURE_IDS)
    return hit


def _machine_info(machine: Machine) -> _MachineInfo:
    hit = _MACHINES.get(id(machine))
    if hit is not None and hit.machine is machine:
        return hit
    peaks = tuple(tensor_peaks_tflops(d, machine) for d in machine.devices)
    hit = _MachineInfo(
        machine=machine,
        backend=backend_family(machine),
        family=family_of(machine),
        peaks=peaks,
        sig=_signature(machine),
        gpu_sig=_signature(machine, gpus_only=True),
        memories=tuple(d.memory_bytes for d in machine.devices),
        peaks_id=_intern(peaks),
        bandwidths=tuple(d.bandwidth_gb_s * 1e9 for d in machine.devices),
        host_gb_s=_host_bandwidth_gb_s(machine),
    )
    if len(_MACHINES) > 4096:
        _MACHINES.clear()
    _MACHINES[id(machine)] = hit
    return hit


@dataclass(frozen=True, slots=True)
class _Placement:
    """Where the layers of a plan live: layers ``[0, start)`` on the host, then GPU layer ranges."""

    layers: tuple[int, ...]  # device of each repeating layer (HOST for the CPU)
    output: int  # device of the output layer
    start: int  # first layer on a GPU (len(layers) when none)
    ranges: tuple[tuple[int, int, int], ...]  # (device, first layer, end layer) per GPU that holds layers
    used_devs: tuple[int, ...]  # GPUs holding any layer or the output layer, in order
    shape: tuple[object, ...]  # (start, ranges, output): what the per-spec sums depend on
    shape_id: int  # equal for equal shapes (``_intern``)


_PLACEMENTS: dict[tuple[object, ...], _Placement] = {}


def _placement(plan: Plan, spec: ModelSpec, machine: Machine) -> _Placement:
    devs = machine.devices
    key = (
        spec.hparams.n_layer,
        len(devs),
        plan.gpu_layers,
        plan.total_layers,
        plan.tensor_split,
        _machine_info(machine).memories,
    )
    hit = _PLACEMENTS.get(key)
    if hit is not None:
        return hit
    layers, output = layer_locations(plan, spec, machine)
    # runs of equal devices (a few per plan: walked run by run, not layer by layer)
    ranges: list[tuple[int, int, int]] = []
    start = len(layers)
    il = 0
    for loc, run in itertools.groupby(layers):
        end = il + len(list(run))
        if loc != HOST or ranges:
            if not ranges:
                start = il
            ranges.append((loc, il, end))
        il = end
    devices = set(layers)
    devices.add(output)
    devices.discard(HOST)
    used = tuple(sorted(devices))
    shape = (start, tuple(ranges), output)
    hit = _Placement(tuple(layers), output, start, tuple(ranges), used, shape, _intern(shape))
    if len(_PLACEMENTS) > 4096:
        _PLACEMENTS.clear()
    _PLACEMENTS[key] = hit
    return hit


@dataclass(slots=True)
class _Fast:
    """Per-spec tables for the fast sums (see above)."""

    groups: tuple[_Group, ...]  # the groups other than the token embeddings, in summary order
    bounds: tuple[int, ...]  # bounds[il]: index in ``groups`` of the first group of a layer >= il (il <= n_layer)
    tail: tuple[int, int]  # [lo, hi) of the groups that go with the output layer
    tail_first: bool  # those come before the repeating layers' groups
    emb_bytes: int  # token-embedding bytes (always on the host)
    bytes_all: tuple[int, ...]  # prefix sums of the groups' bytes
    bytes_ex: tuple[int, ...]  # prefix sums of the routed-expert groups' bytes
    arrays: dict[tuple[object, ...], tuple[Any, Any, Any]] = field(default_factory=dict)  # all, non-expert, expert
    folds: dict[tuple[object, ...], float] = field(default_factory=dict)
    attention: dict[tuple[object, ...], tuple[tuple[int, ...], Any]] = field(default_factory=dict)
    sums: dict[tuple[object, ...], tuple[_Placement, tuple[Any, ...]]] = field(default_factory=dict)  # per layout
    cores: dict[tuple[object, ...], _Core] = field(default_factory=dict)  # per placement and machine


def _clear_sums() -> None:
    """Forget the memoised per-placement sums (``memory.clear_caches``); the per-spec tables stay."""
    for _ref, fast in list(_FASTS.values()):
        if fast is not None:
            fast.sums.clear()
            fast.cores.clear()
    _PLACEMENTS.clear()


memory_module._CLEARERS.append(_clear_sums)


_FASTS: dict[int, tuple[weakref.ref[ModelSpec], _Fast | None]] = {}


def _fast(spec: ModelSpec) -> _Fast | None:
    """The fast-sum tables of a spec, or None when its group order has no contiguous layer runs."""
    hit = _FASTS.get(id(spec))
    if hit is not None and hit[0]() is spec:
        return hit[1]
    n_layer = spec.hparams.n_layer
    groups = tuple(g for g in _summary(spec).groups if g.role is not TensorRole.EMBEDDING)
    emb = sum(g.nbytes for g in _summary(spec).groups if g.role is TensorRole.EMBEDDING)
    keys = [g.layer if g.layer is not None and g.layer < n_layer else -1 for g in groups]
    tail_idx = [i for i, k in enumerate(keys) if k < 0]
    layered = [k for k in keys if k >= 0]
    fast: _Fast | None = None
    ok = layered == sorted(layered)
    if tail_idx:
        lo, hi = tail_idx[0], tail_idx[-1] + 1
        ok = ok and hi - lo == len(tail_idx) and (lo == 0 or hi == len(groups))
    else:
        lo = hi = len(groups)
    if ok:
        tail_first = bool(tail_idx) and lo == 0 and hi < len(groups)
        first = hi if tail_first else 0
        bounds = tuple(first + bisect.bisect_left(layered, il) for il in range(n_layer + 1))
        ex = [g.nbytes if g.role is TensorRole.ROUTED_EXPERTS else 0 for g in groups]
        fast = _Fast(
            groups=groups,
            bounds=bounds,
            tail=(lo, hi),
            tail_first=tail_first,
            emb_bytes=emb,
            bytes_all=(0, *itertools.accumulate(g.nbytes for g in groups)),
            bytes_ex=(0, *itertools.accumulate(ex)),
        )
    if len(_FASTS) > 32:
        _FASTS.clear()
    key = id(spec)

    def _forget(_ref: weakref.ref[ModelSpec], k: int = key) -> None:
        _FASTS.pop(k, None)

    _FASTS[key] = (weakref.ref(spec, _forget), fast)
    return fast


_Region = tuple[int, int, int, int]  # (first group, end group, device of non-expert groups, of expert groups)


def _regions(fast: _Fast, place: _Placement, n_cpu_moe: int, host: int) -> list[_Region]:
    """The runs of groups in order, each with its devices; ``host`` stands for the host (HOST, or the GPU that
    computes host weights)."""
    b = fast.bounds
    out: list[_Region] = []
    if place.start > 0:
        out.append((b[0], b[place.start], host, host))
    for d, lo, hi in place.ranges:
        mid = max(lo, min(n_cpu_moe, hi))
        if mid > lo:
            out.append((b[lo], b[mid], d, host))
        if hi > mid:
            out.append((b[mid], b[hi], d, d))
    tail = (fast.tail[0], fast.tail[1], *((host, host) if place.output == HOST else (place.output, place.output)))
    if fast.tail_first:
        out.insert(0, tail)
    else:
        out.append(tail)
    return out


def _terms(fast: _Fast, key: tuple[object, ...], term: Callable[[_Group], float]) -> tuple[Any, Any, Any]:
    hit = fast.arrays.get(key)
    if hit is None:
        values = [term(g) for g in fast.groups]
        exp = [g.role is TensorRole.ROUTED_EXPERTS for g in fast.groups]
        hit = (
            np.array(values, dtype=np.float64),
            np.array([0.0 if e else v for v, e in zip(values, exp, strict=True)], dtype=np.float64),
            np.array([v if e else 0.0 for v, e in zip(values, exp, strict=True)], dtype=np.float64),
        )
        if len(fast.arrays) > 128:
            fast.arrays.clear()
            fast.folds.clear()
        fast.arrays[key] = hit
    return hit


def _fold(fast: _Fast, key: tuple[object, ...], array: Any, variant: int, a: int, b: int, init: float) -> float:
    """``init`` plus the terms ``array[a:b]`` added one by one, left to right (memoised)."""
    if b <= a:
        return init
    k = (key, variant, a, b, init)
    hit = fast.folds.get(k)
    if hit is None:
        run = array[a:b].copy()
        run[0] += init
        hit = float(np.cumsum(run)[-1])  # a running sum: the additions of the reference loop, in order
        if len(fast.folds) > 65536:
            fast.folds.clear()
        fast.folds[k] = hit
    return hit


def _accumulate(
    fast: _Fast,
    key: tuple[object, ...],
    arrays: tuple[Any, Any, Any],
    regions: Sequence[_Region],
    acc: list[float],
    wanted: Callable[[int], bool],
) -> None:
    """Add the terms of each region to the accumulator of its device (``acc[HOST]`` is the host)."""
    for a, b, d_ne, d_ex in regions:
        if d_ne == d_ex:
            if wanted(d_ne):
                acc[d_ne] = _fold(fast, key, arrays[0], 0, a, b, acc[d_ne])
            continue
        if wanted(d_ne):
            acc[d_ne] = _fold(fast, key, arrays[1], 1, a, b, acc[d_ne])
        if wanted(d_ex):
            acc[d_ex] = _fold(fast, key, arrays[2], 2, a, b, acc[d_ex])


def _host_weight_bytes(fast: _Fast, regions: Sequence[_Region]) -> int:
    total = fast.emb_bytes
    for a, b, d_ne, d_ex in regions:
        if d_ne == HOST:
            total += fast.bytes_all[b] - fast.bytes_all[a]
        elif d_ex == HOST:
            total += fast.bytes_ex[b] - fast.bytes_ex[a]
    return total


def _on_host(loc: int) -> bool:
    return loc == HOST


def _on_gpu(loc: int) -> bool:
    return loc != HOST


def _layer_regions(ils: Sequence[int], place: _Placement, host: int) -> list[tuple[int, int, int, int]]:
    """Runs of per-layer rows (rows sorted by layer ``ils``) by device: host layers, GPU ranges, the rest."""
    out: list[tuple[int, int, int, int]] = []
    end = bisect.bisect_left(ils, len(place.layers))
    if place.start > 0:
        hi = bisect.bisect_left(ils, place.start)
        out.append((0, hi, host, host))
    for d, lo, hi in place.ranges:
        out.append((bisect.bisect_left(ils, lo), bisect.bisect_left(ils, hi), d, d))
    out.append((end, len(ils), host, host))
    return out


def _decode_sums_fast(
    fast: _Fast,
    plan: Plan,
    spec: ModelSpec,
    place: _Placement,
    n_cpu_moe: int,
    n_dev: int,
    peaks: Sequence[tuple[float, float]],
    depth: int,
    streams: int,
) -> _DecodeSums:
    """``_decode_sums`` by folds over runs of groups (identical results)."""
    frac = _expert_fraction(spec, streams)
    hp = spec.hparams
    used = hp.n_expert_used / hp.n_expert if hp.n_expert else 1.0
    exp = TensorRole.ROUTED_EXPERTS
    regions = _regions(fast, place, n_cpu_moe, HOST)
    acc = [0.0] * (n_dev + 1)

    def read(g: _Group) -> float:
        return g.nbytes * (frac if g.role is exp else 1.0)

    key_r = ("read", streams)
    _accumulate(fast, key_r, _terms(fast, key_r, read), regions, acc, _on_host)
    host_bytes = acc[HOST]
    per_dev_quant = [0.0] * n_dev
    per_dev_float = [0.0] * n_dev
    per_dev_flops = [0.0] * n_dev
    if n_dev:
        key_q, key_f = ("read-quant", streams), ("read-float", streams)
        quant = _terms(fast, key_q, lambda g: 0.0 if g.is_float else read(g))
        acc = [0.0] * (n_dev + 1)
        _accumulate(fast, key_q, quant, regions, acc, _on_gpu)
        per_dev_quant = acc[:n_dev]
        floats = _terms(fast, key_f, lambda g: read(g) if g.is_float else 0.0)
        acc = [0.0] * (n_dev + 1)
        _accumulate(fast, key_f, floats, regions, acc, _on_gpu)
        per_dev_float = acc[:n_dev]
        for peak in sorted(set(peaks)):
            p_q, p_f = peak

            def flops(g: _Group, p_q: float = p_q, p_f: float = p_f) -> float:
                f = 2.0 * g.n_elements * streams * (used if g.role is exp else 1.0)
                return f / (p_f * 1e12) if g.is_float else f / (p_q * 1e12)

            key_fl = ("flops", streams, p_q, p_f)
            acc = [0.0] * (n_dev + 1)
            on = {d for d in range(n_dev) if peaks[d] == peak}
            _accumulate(fast, key_fl, _terms(fast, key_fl, flops), regions, acc, on.__contains__)
            for d in on:
                per_dev_flops[d] = acc[d]
    # attention: per layer with a cache, in layer order
    akey = ("attn", plan.cache_type_k, plan.cache_type_v, plan.flash_attention, depth, streams)
    hit = fast.attention.get(akey)
    if hit is None:
        rows = _attention_bytes_per_layer(spec, plan, depth)
        hit = (tuple(rows), np.array([nbytes * streams for nbytes in rows.values()], dtype=np.float64))
        if len(fast.attention) > 1024:
            fast.attention.clear()
        fast.attention[akey] = hit
    ils, values = hit
    arrays = (values, values, values)
    acc = [0.0] * n_dev + [host_bytes]
    _accumulate(fast, akey, arrays, _layer_regions(ils, place, HOST), acc, lambda _d: True)
    host_bytes = acc[HOST]
    per_dev_attn = acc[:n_dev]
    return per_dev_quant, per_dev_float, per_dev_flops, per_dev_attn, host_bytes, _host_weight_bytes(fast, regions)


def _prefill_sums_fast(
    fast: _Fast,
    spec: ModelSpec,
    place: _Placement,
    n_cpu_moe: int,
    n_dev: int,
    offload: bool,
    prompt: int,
    ubatch: int,
    n_ub: int,
    depth: int,
) -> _PrefillSums:
    """``_prefill_sums`` by folds over runs of groups (identical results)."""
    hp = spec.hparams
    used = hp.n_expert_used / hp.n_expert if hp.n_expert else 1.0
    touched = _expert_fraction(spec, ubatch)
    exp = TensorRole.ROUTED_EXPERTS
    home = _regions(fast, place, n_cpu_moe, HOST)  # where each group lives
    run = _regions(fast, place, n_cpu_moe, 0) if offload else home  # where its matmul runs

    def flops(g: _Group) -> float:
        return 2.0 * g.n_elements * (used if g.role is exp else 1.0) * prompt

    def weight(g: _Group) -> float:
        return g.nbytes * (touched if g.role is exp else 1.0) * n_ub

    key_w = ("weights", touched, n_ub)
    w_arrays = _terms(fast, key_w, weight)
    acc = [0.0] * (n_dev + 1)
    _accumulate(fast, key_w, w_arrays, home, acc, _on_host)
    host_read = acc[HOST]
    host_copy = host_read if offload else 0.0
    cpu_flops = 0.0
    key_fa = ("prefill-flops", used, prompt)
    if not offload:
        acc = [0.0] * (n_dev + 1)
        _accumulate(fast, key_fa, _terms(fast, key_fa, flops), home, acc, _on_host)
        cpu_flops = acc[HOST]
    mm_q = [0.0] * n_dev
    mm_f = [0.0] * n_dev
    wread = [0.0] * n_dev
    if n_dev:
        key_q, key_f = ("flops-quant", used, prompt), ("flops-float", used, prompt)
        acc = [0.0] * (n_dev + 1)
        _accumulate(fast, key_q, _terms(fast, key_q, lambda g: 0.0 if g.is_float else flops(g)), run, acc, _on_gpu)
        mm_q = acc[:n_dev]
        acc = [0.0] * (n_dev + 1)
        _accumulate(fast, key_f, _terms(fast, key_f, lambda g: flops(g) if g.is_float else 0.0), run, acc, _on_gpu)
        mm_f = acc[:n_dev]
        acc = [0.0] * (n_dev + 1)
        _accumulate(fast, key_w, w_arrays, run, acc, _on_gpu)
        wread = acc[:n_dev]
    akey = ("prefill-attn", prompt, depth)
    hit = fast.attention.get(akey)
    if hit is None:
        ils, values = _prefill_attention(spec, prompt, depth)
        hit = (ils, np.array(values, dtype=np.float64))
        if len(fast.attention) > 1024:
            fast.attention.clear()
        fast.attention[akey] = hit
    ils, arr = hit
    acc = [0.0] * n_dev + [cpu_flops]
    _accumulate(fast, akey, (arr, arr, arr), _layer_regions(ils, place, 0 if offload else HOST), acc, lambda _d: True)
    return mm_q, mm_f, acc[:n_dev], wread, host_copy, host_read, _host_weight_bytes(fast, home), acc[HOST]


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
        head_k, head_v = _head_sizes(spec, swa)
        k_row = _row_bytes(type_k, head_k * n_kv)
        v_row = 0 if mla else _row_bytes(type_v, head_v * n_kv)
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


def _head_sizes(spec: ModelSpec, swa: bool) -> tuple[int, int]:
    """(K, V) head size of an attention layer: sliding-window layers may have their own (0 = the same)."""
    hp = spec.hparams
    if swa:
        return hp.n_embd_head_k_swa or hp.n_embd_head_k, hp.n_embd_head_v_swa or hp.n_embd_head_v
    return hp.n_embd_head_k, hp.n_embd_head_v


def _row_bytes(cache_type: str, n: int) -> int:
    if n <= 0:
        return 0
    try:
        return cache_row_bytes(cache_type, n)
    except OptionsError:  # a width that is not a multiple of the block: count it as F16
        return 2 * n


def decode_terms(plan: Plan, spec: ModelSpec, machine: Machine, *, depth: int, streams: int = 1) -> DecodeTerms:
    """Ideal times of one decode step for ``streams`` sequences each ``depth`` tokens deep."""
    return _decode_terms(plan, spec, machine, _placement(plan, spec, machine), depth, max(streams, 1))


def _decode_terms(
    plan: Plan, spec: ModelSpec, machine: Machine, place: _Placement, depth: int, streams: int
) -> DecodeTerms:
    layers, output = place.layers, place.output
    n_cpu_moe = plan.n_cpu_moe if machine.devices else spec.hparams.n_layer
    devs = machine.devices
    info = _machine_info(machine)
    peaks = info.peaks
    fast = _fast(spec)
    if fast is not None:
        key = (
            place.shape_id,
            n_cpu_moe,
            info.peaks_id,
            depth,
            streams,
            plan.cache_type_k,
            plan.cache_type_v,
            plan.flash_attention,
        )
        hit = fast.sums.get(key)
        if hit is None:
            hit = (place, _decode_sums_fast(fast, plan, spec, place, n_cpu_moe, len(devs), peaks, depth, streams))
            if len(fast.sums) > 8192:
                fast.sums.clear()
            fast.sums[key] = hit
        per_dev_quant, per_dev_float, per_dev_flops, per_dev_attn, host_bytes, host_weight_bytes = hit[1]
    else:
        per_dev_quant, per_dev_float, per_dev_flops, per_dev_attn, host_bytes, host_weight_bytes = _decode_sums(
            plan, spec, layers, output, n_cpu_moe, len(devs), peaks, depth, streams
        )
    summary = _summary(spec)
    disk_frac = _disk_fraction(plan, host_weight_bytes)
    host_bw = _host_bandwidth_gb_s(machine) * 1e9
    disk_bw = max(machine.disk_read_gb_s, 1e-3) * DISK_EFFICIENCY * 1e9
    gpu_layers = len(layers) - place.start
    used_devs = place.used_devs
    host_expert_layers = 0
    if machine.devices and summary.is_moe and n_cpu_moe > place.start:
        # MoE layers in [start, n_cpu_moe): on a GPU, with their experts on the host
        moe = summary.moe_sorted
        host_expert_layers = bisect.bisect_left(moe, n_cpu_moe) - bisect.bisect_left(moe, place.start)
    host_layers = place.start
    switches = 2 * host_expert_layers + (2 if host_layers and gpu_layers else 0)
    bws = info.bandwidths  # d.bandwidth_gb_s * 1e9
    return DecodeTerms(
        gpu_quant_s=sum([b / w for b, w in zip(per_dev_quant, bws, strict=True)]),
        gpu_float_s=sum([b / w for b, w in zip(per_dev_float, bws, strict=True)]),
        gpu_attn_s=sum([b / w for b, w in zip(per_dev_attn, bws, strict=True)]),
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


_DecodeSums = tuple[list[float], list[float], list[float], list[float], float, int]


def _decode_sums(
    plan: Plan,
    spec: ModelSpec,
    layers: Sequence[int],
    output: int,
    n_cpu_moe: int,
    n_dev: int,
    peaks: Sequence[tuple[float, float]],
    depth: int,
    streams: int,
) -> _DecodeSums:
    """Bytes and FLOPs of one decode step per device, tensor group by tensor group (the reference loop)."""
    frac = _expert_fraction(spec, streams)
    per_dev_quant = [0.0] * n_dev
    per_dev_float = [0.0] * n_dev
    per_dev_attn = [0.0] * n_dev
    per_dev_flops = [0.0] * n_dev
    host_bytes = 0.0
    host_weight_bytes = 0
    used = spec.hparams.n_expert_used / spec.hparams.n_expert if spec.hparams.n_expert else 1.0
    for t in _summary(spec).groups:
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
    return per_dev_quant, per_dev_float, per_dev_flops, per_dev_attn, host_bytes, host_weight_bytes


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
    return _prefill_terms(plan, spec, machine, _placement(plan, spec, machine), prompt, depth)


def _prefill_terms(
    plan: Plan, spec: ModelSpec, machine: Machine, place: _Placement, prompt: int, depth: int
) -> PrefillTerms:
    hp = spec.hparams
    prompt = max(prompt, 1)
    ubatch = max(min(plan.ubatch or 512, plan.batch or 2048, prompt), 1)
    batch = max(min(plan.batch or 2048, prompt), ubatch)
    n_ub = math.ceil(prompt / ubatch)
    layers, output = place.layers, place.output
    n_cpu_moe = plan.n_cpu_moe if machine.devices else hp.n_layer
    devs = machine.devices
    offload = bool(devs) and ubatch >= OP_OFFLOAD_MIN_BATCH
    fast = _fast(spec)
    if fast is not None:
        key = ("prefill", place.shape_id, n_cpu_moe, len(devs), offload, prompt, ubatch, n_ub, depth)
        hit = fast.sums.get(key)
        if hit is None:
            hit = (
                place,
                _prefill_sums_fast(fast, spec, place, n_cpu_moe, len(devs), offload, prompt, ubatch, n_ub, depth),
            )
            if len(fast.sums) > 8192:
                fast.sums.clear()
            fast.sums[key] = hit
        mm_q, mm_f, attn, wread, host_copy, host_read, host_weight_bytes, cpu_flops = hit[1]
    else:
        mm_q, mm_f, attn, wread, host_copy, host_read, host_weight_bytes, cpu_flops = _prefill_sums(
            spec, layers, output, n_cpu_moe, len(devs), offload, prompt, ubatch, n_ub, depth
        )
    info = _machine_info(machine)
    peaks = info.peaks
    mm_q_s = [fl / (p[0] * 1e12) for fl, p in zip(mm_q, peaks, strict=True)]
    mm_f_s = [fl / (p[1] * 1e12) for fl, p in zip(mm_f, peaks, strict=True)]
    attn_s = [fl / (p[1] * 1e12) for fl, p in zip(attn, peaks, strict=True)]
    w_s = [b / w for b, w in zip(wread, info.bandwidths, strict=True)]  # w: d.bandwidth_gb_s * 1e9
    used_devs = place.used_devs
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


_PrefillSums = tuple[list[float], list[float], list[float], list[float], float, float, int, float]


def _prefill_sums(
    spec: ModelSpec,
    layers: Sequence[int],
    output: int,
    n_cpu_moe: int,
    n_dev: int,
    offload: bool,
    prompt: int,
    ubatch: int,
    n_ub: int,
    depth: int,
) -> _PrefillSums:
    """FLOPs and bytes of a prompt per device, tensor group by tensor group (the reference loop)."""
    hp = spec.hparams
    used = hp.n_expert_used / hp.n_expert if hp.n_expert else 1.0
    touched = _expert_fraction(spec, ubatch)
    mm_q = [0.0] * n_dev
    mm_f = [0.0] * n_dev
    attn = [0.0] * n_dev
    wread = [0.0] * n_dev
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
    for il, flops in zip(*_prefill_attention(spec, prompt, depth), strict=True):
        loc = layers[il] if il < len(layers) else HOST
        if loc == HOST and not offload:
            cpu_flops += flops
        else:
            attn[max(loc, 0)] += flops
    return mm_q, mm_f, attn, wread, host_copy, host_read, host_weight_bytes, cpu_flops


def _prefill_attention(spec: ModelSpec, prompt: int, depth: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(layers, attention FLOPs of the prompt per layer): QK^T and AV over the average attended span."""
    hp = spec.hparams
    ils = kv_layers(spec)
    out: list[float] = []
    for il in ils:
        n_q = hp.n_head[il] if il < len(hp.n_head) else 0
        swa = bool(hp.swa_layers) and il < len(hp.swa_layers) and hp.swa_layers[il] and hp.n_swa > 0
        span = depth + (prompt + 1) / 2.0
        if swa:
            span = min(span, float(hp.n_swa))
        head_k, head_v = _head_sizes(spec, swa)
        out.append(2.0 * n_q * (head_k + head_v) * span * prompt)
    return ils, tuple(out)


_DECODE_FIELDS = tuple(f.name for f in dataclasses.fields(DecodeTerms))
_PREFILL_FIELDS = tuple(f.name for f in dataclasses.fields(PrefillTerms))
_decode_values = operator.attrgetter(*_DECODE_FIELDS)  # the fields' values, in order, as a tuple
_prefill_values = operator.attrgetter(*_PREFILL_FIELDS)


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


def _replace(plan: Plan, **changes: Any) -> Plan:
    """``dataclasses.replace`` for a Plan (no ``__post_init__``, no slots), without re-running ``__init__``."""
    state = getattr(plan, "__dict__", None)
    if state is None or type(plan) is not Plan:  # pragma: no cover - a subclass or a slotted Plan
        return dataclasses.replace(plan, **changes)
    new = object.__new__(Plan)
    new.__dict__.update(state)
    new.__dict__.update(changes)
    return new


def estimate(plan: Plan, spec: ModelSpec, machine: Machine) -> Plan:
    """The plan with its speed and cost fields filled (``dataclasses.replace``); unchanged if it does not fit."""
    prompt = plan.prompt_tokens or DEFAULT_PROMPT_TOKENS
    if plan.context > 0:
        prompt = min(prompt, plan.context)  # a prompt longer than the context cannot be served
    price = machine.price_per_hour
    if not plan.fits or spec.hparams.n_layer <= 0:
        return _replace(plan, prompt_tokens=prompt, price_per_hour=price, currency=machine.currency)
    core = _core(plan, spec, machine, prompt)
    extra = dict(plan.extra)
    extra["speed"] = {
        "decode_depth_tokens": prompt,
        "decode_step_s": dict(core.decode_step_s),
        "prefill_s": dict(core.prefill_s),
        "calibration": dict(core.calibration),
        "expected_error": dict(core.expected_error),
    }
    return _replace(
        plan,
        decode_tok_s=core.decode,
        decode_tok_s_parallel=core.decode_parallel,
        prefill_tok_s=core.prefill,
        ttft_s=core.ttft_s,
        prompt_tokens=prompt,
        cost_per_mtok=cost_per_mtok(price, core.decode),
        cost_per_mtok_parallel=cost_per_mtok(price, core.decode_parallel),
        price_per_hour=price,
        currency=machine.currency,
        bottleneck=core.bottleneck,
        extra=extra,
    )


@dataclass(frozen=True, slots=True)
class _Core:
    """The figures of an estimate that depend on the placement and the machine, not on the plan's buffers."""

    machine: Machine
    decode: float
    decode_parallel: float
    prefill: float
    ttft_s: float
    bottleneck: str
    decode_step_s: dict[str, Any]
    prefill_s: dict[str, Any]
    calibration: dict[str, str]
    expected_error: dict[str, Any]


def _core(plan: Plan, spec: ModelSpec, machine: Machine, prompt: int) -> _Core:
    """``_compute_core``, memoised per spec on everything it reads.

    The key names the placement by its layer ranges (``_Placement.shape``), not by the ``-ts``
    figures that led to it, and the machine by its hardware signature; when no byte the estimate
    reads is on the host (every layer and the output layer on GPUs, no experts kept on the host),
    the host's cores, RAM and disk bandwidth drop out of every term (each is a product with a zero
    host sum), so the signature of the backend and GPUs alone is used and machines that share
    their GPUs share the figures. With bytes on the host but GPUs that take every prompt matmul
    (micro-batches of at least ``OP_OFFLOAD_MIN_BATCH``) and nothing read from disk, the host counts
    only through its effective bandwidth (``_host_bandwidth_gb_s``: the CPU does no prefill work, and
    the disk terms are products with a zero share), so that figure joins the GPUs' signature. Reading
    from disk, the share of weights re-read from disk also depends on the plan's RAM and host
    buffers (``_disk_fraction``): those figures join the full signature.
    """
    fast = _fast(spec)
    if fast is None:
        return _compute_core(plan, spec, machine, prompt)
    info = _machine_info(machine)
    place = _placement(plan, spec, machine)
    hardware: object = info.sig
    if plan.reading_from_disk:
        host = next((d for d in plan.devices if d.kind == "host"), None)
        other = host.total_bytes - host.weights_bytes if host is not None else None
        hardware = (info.sig, plan.ram_total_bytes, other, plan.ram_required_bytes if host is None else 0)
    elif machine.devices:
        if place.start == 0 and place.output != HOST and plan.n_cpu_moe == 0:
            hardware = info.gpu_sig
        elif max(min(plan.ubatch or 512, plan.batch or 2048, prompt), 1) >= OP_OFFLOAD_MIN_BATCH:
            hardware = (info.gpu_sig, info.host_gb_s)
    key = (
        "core",
        hardware,
        prompt,
        plan.gpu_layers,
        plan.total_layers,
        place.shape_id,
        plan.n_cpu_moe,
        plan.cache_type_k,
        plan.cache_type_v,
        plan.flash_attention,
        plan.parallel,
        plan.batch,
        plan.ubatch,
        plan.moe_layers,
    )
    hit = fast.cores.get(key)
    if hit is None:
        hit = _compute_core(plan, spec, machine, prompt, place)
        if len(fast.cores) > 2048:
            fast.cores.clear()
        fast.cores[key] = hit
    return hit


def _compute_core(plan: Plan, spec: ModelSpec, machine: Machine, prompt: int, place: _Placement | None = None) -> _Core:
    place = place or _placement(plan, spec, machine)
    cal = load_calibration()
    info = _machine_info(machine)
    backend = info.backend
    f = cal.factors(backend)
    scale = cal.scale(info.family)
    depth = prompt  # decode right after the stated prompt
    one = _decode_terms(plan, spec, machine, place, depth, 1)
    decode = 1.0 / one.seconds(f)
    parallel = max(plan.parallel, 1)
    many = _decode_terms(plan, spec, machine, place, depth, parallel) if parallel > 1 else one
    decode_parallel = parallel / many.seconds(f)
    pre = _prefill_terms(plan, spec, machine, place, prompt, 0)
    prefill_s = pre.seconds(f, scale)
    prefill = prompt / prefill_s
    bottleneck = _bottleneck(plan, spec, machine, one, f)
    if pre.disk_s > 0.5 * prefill_s and not bottleneck.startswith("disk"):
        bottleneck += "; prefill: disk: weights read from disk"
    elif pre.pcie_s > 0.5 * prefill_s:
        what = "experts" if _summary(spec).is_moe and one.host_layers == 0 else "layers"
        bottleneck += f"; prefill: PCIe: {what} copied per micro-batch"
    return _Core(
        machine=machine,
        decode=decode,
        decode_parallel=decode_parallel,
        prefill=prefill,
        ttft_s=prefill_s + 1.0 / decode,
        bottleneck=bottleneck,
        decode_step_s=dict(zip(_DECODE_FIELDS, _decode_values(one), strict=True)),
        prefill_s=dict(zip(_PREFILL_FIELDS, _prefill_values(pre), strict=True)),
        calibration={"backend": backend, "family": info.family, "source": cal.source},
        expected_error=dict(cal.error.get(backend, {})) or {"note": "no calibration data for this backend"},
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
