"""The hardware catalog: GPUs, cloud instances, GPU classes, workstations, CPU-only, and this machine.

Data lives in ``catalog/data/{gpus,machines,workstations}.yaml``; its rows are checked at load by
:mod:`servefit.catalog.hardware_rows` (a load error names the file, the row and the field). The
``local`` target is detected by :mod:`servefit.local_machine`.

Every target becomes a :class:`~servefit.machine.Machine`:

- a cloud instance, ``<provider>/<instance>`` in lower case (``scaleway/l4-2-24g``);
- a GPU class, ``<gpu id>-<total memory>gb`` (``nvidia-l4-48gb`` = 2x L4): instances of different
  providers with the same GPUs share it, because a deployment's values depend on the GPUs only;
- a workstation or consumer machine (``rtx-4090``, ``mac-studio-m3-ultra-512gb``, ``dgx-spark``);
- ``cpu`` (CPU only) and ``local`` (this machine, detected);
- a count and a GPU, ``2xL4``, ``1xH100-80G``, ``4xL40S``, ``2xnvidia-l4``, ``l4x2``: the GPU class,
  with default host RAM and cores (see :func:`default_host`).

The llama.cpp backend of a target follows from its GPU (:func:`backend_for`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from servefit.catalog import load_data_file
from servefit.catalog.hardware_rows import (
    GpuRow,
    MachineRow,
    WorkstationRow,
    parse_gpu_rows,
    parse_machine_rows,
    parse_workstation_rows,
    slug,
)
from servefit.errors import CatalogError, OptionsError, UnknownHardwareError
from servefit.machine import Backend, Device, Machine

__all__ = [
    "CPU_TARGET_ID",
    "CUDA13_MIN_COMPUTE_CAPABILITY",
    "LOCAL_TARGET_ID",
    "ROCM_IMAGE_GFX_TARGETS",
    "CloudInstance",
    "Gpu",
    "Workstation",
    "backend_for",
    "default_host",
    "detect_local",
    "estimate_ram_bandwidth_gb_s",
    "find_gpu",
    "gpu_class_id",
    "list_cloud_instances",
    "list_gpus",
    "list_targets",
    "list_workstations",
    "parse_gpu_rows",
    "parse_machine_rows",
    "parse_workstation_rows",
    "parse_yaml",
    "pcie_effective_gb_s",
    "resolve_target",
    "target_kind",
]

GIB = 1 << 30
MIB = 1 << 20
GB = 10**9

CPU_TARGET_ID = "cpu"
LOCAL_TARGET_ID = "local"

# llama.cpp's CUDA 13 images (docker tag "cuda13", CUDA 13.x) build for compute capabilities 7.5 and up
# only: ggml/src/ggml-cuda/CMakeLists.txt adds 50/61/70 (Maxwell, Pascal, Volta) only below CUDA 13.
CUDA13_MIN_COMPUTE_CAPABILITY = (7, 5)
# AMD targets compiled into llama.cpp's ROCm image (.devops/rocm.Dockerfile, ROCM_DOCKER_ARCH);
# other AMD GPUs fall back to the Vulkan image.
ROCM_IMAGE_GFX_TARGETS = frozenset(
    {
        "gfx908",
        "gfx90a",
        "gfx942",
        "gfx1030",
        "gfx1100",
        "gfx1101",
        "gfx1102",
        "gfx1150",
        "gfx1151",
        "gfx1200",
        "gfx1201",
    }
)

# Effective host<->device copy rate: theoretical per-direction PCIe rate x 0.8 (pinned-memory copies
# reach about 80% of the link: ~25 GB/s on PCIe 4.0 x16, whose theoretical rate is 31.5 GB/s).
_PCIE_GB_S_PER_LANE = {3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}
_PCIE_EFFICIENCY = 0.8

# Host RAM bandwidth of a cloud VM, estimated from its vCPU share of a server socket: a DDR5 server
# socket gives ~300-460 GB/s to 96-128 cores (192-256 hardware threads), about 2.5 GB/s per vCPU.
_RAM_GB_S_PER_VCPU = 2.5
_RAM_GB_S_MIN = 20.0
_RAM_GB_S_MAX = 400.0
# Disk read rate of a cloud instance's boot/block volume (network block storage or local NVMe), GB/s.
_CLOUD_DISK_READ_GB_S = 2.0

# A bare GPU class (``2xL4``, ``nvidia-l4-48gb``) runs on a host with twice its VRAM in RAM (the
# common cloud ratio: Scaleway L4-2-24G has 96 GiB for 48 GB of VRAM, AWS g6.12xlarge 192 GiB for 96 GB),
# at least 32 GiB, and 8 CPU cores per GPU.
_CLASS_RAM_PER_VRAM = 2
_CLASS_MIN_RAM_BYTES = 32 * GIB
_CLASS_CORES_PER_GPU = 8

# The ``cpu`` target: a CPU-only server slice.
_CPU_TARGET_CORES = 16
_CPU_TARGET_RAM_BYTES = 64 * GIB
_CPU_TARGET_RAM_GB_S = 2 * 8 * 4.8  # two DDR5-4800 channels, GB/s


# --------------------------------------------------------------------------------------------------
# Catalog types (frozen dataclasses inside)


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU model. ``memory_bytes`` is what the driver reports where known, else the marketed GiB."""

    id: str
    name: str
    vendor: str
    architecture: str
    memory_bytes: int
    bandwidth_gb_s: float
    fp16_tflops: float
    int8_tops: float | None
    compute_capability: str
    interconnect: str
    unified_memory: bool
    source: str
    memory_gib: float = 0.0  # marketed size (largest configuration for unified-memory chips)
    memory_type: str = ""
    gfx_target: str = ""
    pcie_gb_s: float = 0.0  # effective host<->device copy rate; memory bandwidth for unified memory
    tdp_w: float | None = None
    aliases: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True, slots=True)
class CloudInstance:
    """One provider instance type as listed (the Machine built from it is in :func:`list_targets`)."""

    id: str
    provider: str
    name: str
    gpu: str
    gpu_count: int
    vcpus: int | None
    ram_bytes: int | None
    price_per_hour: float | None
    currency: str
    price_date: str
    price_basis: str
    region: str
    source: str
    notes: str


@dataclass(frozen=True, slots=True)
class Workstation:
    id: str
    name: str
    gpu: str
    gpu_count: int
    ram_bytes: int
    cpu_cores: int
    ram_bandwidth_gb_s: float
    gpu_memory_fraction: float | None
    disk_read_gb_s: float
    source: str
    notes: str


def pcie_effective_gb_s(gen: int, lanes: int) -> float:
    """Effective host<->device copy rate of a PCIe link, GB/s (80% of the theoretical rate)."""
    return round(_PCIE_GB_S_PER_LANE[gen] * lanes * _PCIE_EFFICIENCY, 1)


def estimate_ram_bandwidth_gb_s(vcpus: int) -> float:
    """Host RAM bandwidth of a cloud VM with ``vcpus`` vCPUs, GB/s (documented estimate)."""
    return min(_RAM_GB_S_MAX, max(_RAM_GB_S_MIN, _RAM_GB_S_PER_VCPU * vcpus))


def backend_for(gpu: Gpu | None) -> Backend:
    """The llama.cpp backend (container image) a GPU needs; ``None`` (no GPU) is CPU.

    NVIDIA: CUDA 13 from compute capability 7.5 (Turing) on, CUDA 12 below (Maxwell, Pascal, Volta);
    Apple: Metal; AMD: ROCm for the gfx targets in llama.cpp's ROCm image, else Vulkan; others: Vulkan.
    """
    if gpu is None:
        return Backend.CPU
    if gpu.vendor == "NVIDIA":
        major, minor = (int(part) for part in gpu.compute_capability.split("."))
        return Backend.CUDA13 if (major, minor) >= CUDA13_MIN_COMPUTE_CAPABILITY else Backend.CUDA12
    if gpu.vendor == "Apple":
        return Backend.METAL
    if gpu.vendor == "AMD" and gpu.gfx_target in ROCM_IMAGE_GFX_TARGETS:
        return Backend.ROCM
    return Backend.VULKAN


def _fmt_gb(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def gpu_class_id(gpu_id: str, count: int, *, memory_gib: float | None = None) -> str:
    """The shared values key of ``count`` GPUs: gpu id + total memory, ``nvidia-l4-48gb`` for 2x L4.

    ``memory_gib`` overrides the per-GPU size (unified-memory machines use their RAM size).
    """
    if count < 1:
        raise OptionsError(f"GPU count must be at least 1, got {count}", option="count")
    if memory_gib is None:
        memory_gib = _gpu_index()[gpu_id].memory_gib if gpu_id in _gpu_index() else None
    if memory_gib is None:
        raise UnknownHardwareError(gpu_id, _suggest(gpu_id, [g.id for g in list_gpus()]))
    return f"{gpu_id}-{_fmt_gb(memory_gib * count)}gb"


def default_host(gpu: Gpu, count: int) -> tuple[int, int]:
    """(host RAM bytes, CPU cores) assumed for a bare GPU class: 2x its VRAM (>= 32 GiB), 8 cores per GPU."""
    vram = round(gpu.memory_gib * GIB) * count
    ram = max(_CLASS_MIN_RAM_BYTES, _CLASS_RAM_PER_VRAM * vram)
    ram = math.ceil(ram / (16 * GIB)) * 16 * GIB
    return ram, _CLASS_CORES_PER_GPU * count


# --------------------------------------------------------------------------------------------------
# Loading (cached: the web site and the planner benchmark call these a lot)


def _gpu_from_row(row: GpuRow) -> Gpu:
    reported = row.memory_reported_mib
    memory = reported * MIB if reported is not None else round(row.memory_gib * GIB)
    if row.unified_memory:
        link = row.bandwidth_gb_s
    elif row.host_link_gb_s is not None:
        link = row.host_link_gb_s
    else:
        assert row.pcie_gen is not None
        link = pcie_effective_gb_s(row.pcie_gen, row.pcie_lanes or 16)
    return Gpu(
        id=row.id,
        name=row.name,
        vendor=row.vendor,
        architecture=row.architecture,
        memory_bytes=memory,
        bandwidth_gb_s=row.bandwidth_gb_s,
        fp16_tflops=row.fp16_tflops,
        int8_tops=row.int8_tops,
        compute_capability=row.compute_capability,
        interconnect=row.interconnect,
        unified_memory=row.unified_memory,
        source=row.source,
        memory_gib=row.memory_gib,
        memory_type=row.memory_type,
        gfx_target=row.gfx_target,
        pcie_gb_s=link,
        tdp_w=row.tdp_w,
        aliases=row.aliases,
        notes=row.notes,
    )


def _load(name: str) -> Any:
    """Parse a data file with libyaml when available (10x faster than the pure-Python parser)."""
    if getattr(yaml, "CSafeLoader", None) is None:
        return load_data_file(name)
    try:
        text = resources.files("servefit.catalog").joinpath("data", name).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"catalog file {name}: cannot read ({exc})", path=name) from exc
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> Any:
    """Parse a data file's text (libyaml when available); a syntax error becomes a CatalogError naming the file."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise CatalogError(f"catalog file {name}: invalid YAML ({reason})", path=name) from exc


@functools.cache
def _rows() -> tuple[tuple[GpuRow, ...], tuple[MachineRow, ...], tuple[WorkstationRow, ...]]:
    gpus = parse_gpu_rows(_load("gpus.yaml"))
    ids = [row.id for row in gpus]
    machines = parse_machine_rows(_load("machines.yaml"), ids)
    workstations = parse_workstation_rows(_load("workstations.yaml"), ids)
    return tuple(gpus), tuple(machines), tuple(workstations)


@functools.cache
def list_gpus() -> tuple[Gpu, ...]:
    """Every GPU of the catalog, in file order."""
    return tuple(_gpu_from_row(row) for row in _rows()[0])


@functools.cache
def _gpu_index() -> dict[str, Gpu]:
    return {gpu.id: gpu for gpu in list_gpus()}


@functools.cache
def _gpu_names() -> dict[str, Gpu]:
    """Lookup keys of every GPU: its id, id without the vendor prefix, and aliases (normalised)."""
    names: dict[str, Gpu] = {}
    for gpu in list_gpus():
        vendor_prefix = gpu.vendor.lower() + "-"
        for key in (gpu.id, gpu.id.removeprefix(vendor_prefix), *gpu.aliases):
            names.setdefault(_normalise_gpu_name(key), gpu)
    return names


def _normalise_gpu_name(text: str) -> str:
    name = re.sub(r"[\s_]+", "-", text.strip().lower())
    name = re.sub(r"^(nvidia|amd|apple|geforce)-", "", name)
    name = re.sub(r"^(nvidia|amd|apple|geforce)-", "", name)
    name = re.sub(r"-?(\d+)g(b)?$", r"-\1gb", name)
    return name


def find_gpu(name: str) -> Gpu | None:
    """The GPU named by an id, an alias, or a name with a memory suffix (``H100-80G``); None if unknown."""
    key = _normalise_gpu_name(name)
    names = _gpu_names()
    if key in names:
        return names[key]
    match = re.match(r"^(.*?)-(\d+)gb$", key)
    if match and match.group(1) in names:
        gpu = names[match.group(1)]
        if math.isclose(gpu.memory_gib, float(match.group(2)), rel_tol=0.02):
            return gpu
    return None


@functools.cache
def list_cloud_instances() -> tuple[CloudInstance, ...]:
    """Every cloud instance type as listed in machines.yaml."""
    return tuple(
        CloudInstance(
            id=row.id,
            provider=row.provider,
            name=row.instance,
            gpu=row.gpu,
            gpu_count=row.gpu_count,
            vcpus=row.vcpus,
            ram_bytes=None if row.ram is None else round(row.ram * (GIB if row.ram_unit == "GiB" else GB)),
            price_per_hour=row.price_per_hour,
            currency=row.currency or "",
            price_date=row.price_date or "",
            price_basis=row.price_basis or "",
            region=row.region or "",
            source=row.source,
            notes=row.notes or "",
        )
        for row in _rows()[1]
    )


@functools.cache
def list_workstations() -> tuple[Workstation, ...]:
    """Every workstation and consumer machine of workstations.yaml."""
    out = []
    for row in _rows()[2]:
        gpu = _gpu_index()[row.gpu]
        bandwidth = row.ram_bandwidth_gb_s if row.ram_bandwidth_gb_s is not None else gpu.bandwidth_gb_s
        out.append(
            Workstation(
                id=row.id,
                name=row.name,
                gpu=row.gpu,
                gpu_count=row.gpu_count,
                ram_bytes=round(row.ram_gib * GIB),
                cpu_cores=row.cpu_cores,
                ram_bandwidth_gb_s=bandwidth,
                gpu_memory_fraction=row.gpu_memory_fraction,
                disk_read_gb_s=row.disk_read_gb_s,
                source=row.source,
                notes=row.notes,
            )
        )
    return tuple(out)


def _device(gpu: Gpu, memory_bytes: int | None = None) -> Device:
    return Device(
        name=gpu.name,
        gpu_id=gpu.id,
        memory_bytes=gpu.memory_bytes if memory_bytes is None else memory_bytes,
        bandwidth_gb_s=gpu.bandwidth_gb_s,
        fp16_tflops=gpu.fp16_tflops,
        int8_tops=gpu.int8_tops or 0.0,
        compute_capability=gpu.compute_capability,
        pcie_gb_s=gpu.pcie_gb_s,
    )


def _class_machine(gpu: Gpu, count: int) -> Machine:
    ram, cores = default_host(gpu, count)
    class_id = gpu_class_id(gpu.id, count)
    return Machine(
        id=class_id,
        name=f"{count}x {gpu.name} ({_fmt_gb(gpu.memory_gib * count)} GB)",
        devices=tuple(_device(gpu) for _ in range(count)),
        host_ram_bytes=ram,
        cpu_cores=cores,
        backend=backend_for(gpu),
        ram_bandwidth_gb_s=estimate_ram_bandwidth_gb_s(cores * 2),
        disk_read_gb_s=_CLOUD_DISK_READ_GB_S,
        gpu_class=class_id,
        source=f"GPU: {gpu.source}; host: default for a bare GPU class (2x VRAM in RAM, >= 32 GiB; 8 cores per GPU)",
    )


def _instance_machine(inst: CloudInstance) -> Machine:
    gpu = _gpu_index()[inst.gpu]
    default_ram, default_cores = default_host(gpu, inst.gpu_count)
    cores = inst.vcpus if inst.vcpus is not None else default_cores
    source = inst.source
    if inst.vcpus is None or inst.ram_bytes is None:
        source += "; host RAM/cores not published: bare GPU class defaults used"
    return Machine(
        id=inst.id,
        name=f"{inst.provider} {inst.name}",
        devices=tuple(_device(gpu) for _ in range(inst.gpu_count)),
        host_ram_bytes=inst.ram_bytes if inst.ram_bytes is not None else default_ram,
        cpu_cores=cores,
        backend=backend_for(gpu),
        ram_bandwidth_gb_s=estimate_ram_bandwidth_gb_s(cores),
        disk_read_gb_s=_CLOUD_DISK_READ_GB_S,
        gpu_class=gpu_class_id(gpu.id, inst.gpu_count),
        provider=inst.provider,
        price_per_hour=inst.price_per_hour,
        currency=inst.currency,
        price_date=inst.price_date,
        source=source,
    )


def _workstation_machine(ws: Workstation) -> Machine:
    gpu = _gpu_index()[ws.gpu]
    if gpu.unified_memory:
        fraction = ws.gpu_memory_fraction if ws.gpu_memory_fraction is not None else 0.75
        devices = tuple(_device(gpu, int(ws.ram_bytes * fraction)) for _ in range(ws.gpu_count))
        gpu_class = gpu_class_id(gpu.id, ws.gpu_count, memory_gib=ws.ram_bytes / GIB)
    else:
        devices = tuple(_device(gpu) for _ in range(ws.gpu_count))
        gpu_class = gpu_class_id(gpu.id, ws.gpu_count)
    return Machine(
        id=ws.id,
        name=ws.name,
        devices=devices,
        host_ram_bytes=ws.ram_bytes,
        cpu_cores=ws.cpu_cores,
        backend=backend_for(gpu),
        ram_bandwidth_gb_s=ws.ram_bandwidth_gb_s,
        disk_read_gb_s=ws.disk_read_gb_s,
        unified_memory=gpu.unified_memory,
        gpu_class=gpu_class,
        source=ws.source,
    )


def _cpu_machine() -> Machine:
    return Machine(
        id=CPU_TARGET_ID,
        name=f"CPU only ({_CPU_TARGET_CORES} cores, {_CPU_TARGET_RAM_BYTES // GIB} GiB RAM)",
        devices=(),
        host_ram_bytes=_CPU_TARGET_RAM_BYTES,
        cpu_cores=_CPU_TARGET_CORES,
        backend=Backend.CPU,
        ram_bandwidth_gb_s=_CPU_TARGET_RAM_GB_S,
        source="generic CPU-only server slice (16 cores, 64 GiB, two DDR5-4800 channels); override with --ram",
    )


@functools.cache
def _targets() -> tuple[tuple[Machine, ...], dict[str, str]]:
    machines: list[Machine] = []
    kinds: dict[str, str] = {}
    for inst in list_cloud_instances():
        machines.append(_instance_machine(inst))
        kinds[inst.id] = "cloud"
    class_keys: list[tuple[str, int]] = []
    for gpu in list_gpus():
        if not gpu.unified_memory:
            class_keys.append((gpu.id, 1))
    class_keys += [(inst.gpu, inst.gpu_count) for inst in list_cloud_instances()]
    class_keys += [(ws.gpu, ws.gpu_count) for ws in list_workstations() if not _gpu_index()[ws.gpu].unified_memory]
    for gpu_id, count in dict.fromkeys(class_keys):
        machine = _class_machine(_gpu_index()[gpu_id], count)
        machines.append(machine)
        kinds[machine.id] = "gpu-class"
    for ws in list_workstations():
        machines.append(_workstation_machine(ws))
        kinds[ws.id] = "workstation"
    machines.append(_cpu_machine())
    kinds[CPU_TARGET_ID] = "cpu"
    seen: set[str] = set()
    for machine in machines:
        if machine.id in seen:
            raise CatalogError(f"hardware catalog: target id {machine.id!r} is defined twice", row=machine.id)
        seen.add(machine.id)
    return tuple(machines), kinds


def list_targets() -> tuple[Machine, ...]:
    """Every catalog target: cloud instances, GPU classes, workstations/consumer machines, and ``cpu``."""
    return _targets()[0]


def target_kind(machine_id: str) -> str:
    """``cloud``, ``gpu-class``, ``workstation``, ``cpu``, or ``local`` (anything else)."""
    return _targets()[1].get(machine_id, "local")


@functools.cache
def _target_index() -> dict[str, Machine]:
    return {machine.id: machine for machine in list_targets()}


@functools.cache
def _suggestion_pool() -> tuple[str, ...]:
    pool = [machine.id for machine in list_targets()]
    pool += [gpu.id for gpu in list_gpus()]
    pool += [alias for gpu in list_gpus() for alias in gpu.aliases]
    return tuple(dict.fromkeys(pool))


def _suggest(query: str, pool: Sequence[str], limit: int = 3) -> list[str]:
    key = query.strip().lower()
    if not key:
        return []
    close = difflib.get_close_matches(key, pool, n=limit, cutoff=0.6)
    contains = sorted((c for c in pool if key in c and c not in close), key=len)
    gpu_part = re.sub(r"^\d+\s*[x×*]\s*|\s*[x×*]\s*\d+$", "", key)
    related: list[str] = []
    gpu = find_gpu(gpu_part) if gpu_part else None
    if gpu is not None:
        related = [
            m.id for m in list_targets() if m.gpu_class.startswith(gpu.id + "-") and target_kind(m.id) == "gpu-class"
        ]
    out = list(dict.fromkeys([*close, *related, *contains]))
    return out[:limit]


# --------------------------------------------------------------------------------------------------
# Target specs

_COUNT_FIRST = re.compile(r"^(\d+)\s*[x×*]\s*(.+)$")
_COUNT_LAST = re.compile(r"^(.+?)\s*[x×*]\s*(\d+)$")


def _count_spec(key: str) -> tuple[int, Gpu] | None:
    for pattern, count_group, gpu_group in ((_COUNT_FIRST, 1, 2), (_COUNT_LAST, 2, 1)):
        match = pattern.match(key)
        if match:
            gpu = find_gpu(match.group(gpu_group))
            if gpu is not None:
                return int(match.group(count_group)), gpu
    return None


def resolve_target(spec: str, *, vram_bytes: int | None = None, ram_bytes: int | None = None) -> Machine:
    """The Machine a target spec names, with optional total-VRAM and host-RAM overrides.

    Accepts catalog ids (``scaleway/l4-2-24g`` or ``Scaleway/L4-2-24G``), GPU class ids
    (``nvidia-l4-48gb``), workstation ids (``rtx-4090``), ``cpu``, ``local``, a count and a GPU
    (``2xL4``, ``1xH100-80G``, ``4xL40S``, ``2xnvidia-l4``, ``l4x2``) and a bare GPU (``l4`` = 1x).
    ``vram_bytes`` is the total GPU memory, split evenly across the GPUs.
    """
    machine = _resolve(spec)
    return _apply_overrides(machine, vram_bytes=vram_bytes, ram_bytes=ram_bytes)


def _resolve(spec: str) -> Machine:
    key = spec.strip().lower()
    if not key:
        raise UnknownHardwareError(spec, ["cpu", "local", "rtx-4090"])
    if key == LOCAL_TARGET_ID:
        return detect_local()  # never cached: this machine may change
    return _resolve_catalog(key, spec)


@functools.lru_cache(maxsize=4096)
def _resolve_catalog(key: str, spec: str) -> Machine:
    index = _target_index()
    if key in index:
        return index[key]
    if "/" in key:
        provider, _, instance = key.partition("/")
        key_slug = f"{slug(provider)}/{slug(instance)}"
        if key_slug in index:
            return index[key_slug]
    parsed = _count_spec(key)
    if parsed is None:
        gpu = find_gpu(key)
        if gpu is not None:
            parsed = (1, gpu)
    if parsed is not None:
        count, gpu = parsed
        if count < 1 or count > 64:
            raise OptionsError(f"hardware {spec!r}: GPU count must be between 1 and 64", option="on")
        if gpu.unified_memory:
            workstations = [ws.id for ws in list_workstations() if ws.gpu == gpu.id]
            raise UnknownHardwareError(spec, workstations or [CPU_TARGET_ID])
        class_id = gpu_class_id(gpu.id, count)
        return index.get(class_id) or _class_machine(gpu, count)
    raise UnknownHardwareError(spec, _suggest(key, _suggestion_pool()))


def _apply_overrides(machine: Machine, *, vram_bytes: int | None, ram_bytes: int | None) -> Machine:
    changes: dict[str, Any] = {}
    if vram_bytes is not None:
        if vram_bytes <= 0:
            raise OptionsError(f"--vram must be positive, got {vram_bytes} bytes", option="vram")
        if not machine.devices:
            raise OptionsError(f"--vram given for {machine.id!r}, which has no GPU", option="vram")
        per_device = vram_bytes // len(machine.devices)
        changes["devices"] = tuple(dataclasses.replace(d, memory_bytes=per_device) for d in machine.devices)
    if ram_bytes is not None:
        if ram_bytes <= 0:
            raise OptionsError(f"--ram must be positive, got {ram_bytes} bytes", option="ram")
        changes["host_ram_bytes"] = ram_bytes
    return dataclasses.replace(machine, **changes) if changes else machine


def detect_local(
    *, probe: Callable[[], list[dict[str, Any]]] | None = None, meminfo_path: str = "/proc/meminfo"
) -> Machine:
    """This machine (``servefit.local_machine.detect_local``): NVIDIA GPUs through NVML, RAM, CPU cores."""
    from servefit.local_machine import detect_local as detect

    return detect(probe=probe, meminfo_path=meminfo_path)
