"""Machine: the hardware a plan runs on (GPUs, host RAM, CPU, disk, backend, price).

Types only. The hardware catalog (``hardware.py`` and ``catalog/``) builds these from its data
files, from a target spec such as ``2xL4`` or ``scaleway/l4-2-24g``, or from local detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Backend", "Device", "Machine"]


class Backend(StrEnum):
    """The llama.cpp backend (and so the container image) a machine needs."""

    CUDA12 = "cuda12"
    CUDA13 = "cuda13"
    ROCM = "rocm"
    VULKAN = "vulkan"
    METAL = "metal"
    CPU = "cpu"


@dataclass(frozen=True, slots=True)
class Device:
    """One accelerator as llama.cpp sees it."""

    name: str  # "NVIDIA L4"
    gpu_id: str  # catalog id: "nvidia-l4"
    memory_bytes: int
    bandwidth_gb_s: float  # memory bandwidth, GB/s (10^9 bytes)
    fp16_tflops: float  # dense FP16/BF16 tensor throughput
    int8_tops: float = 0.0
    compute_capability: str = ""  # "8.9" for NVIDIA, "" elsewhere
    pcie_gb_s: float = 25.0  # host<->device copy bandwidth, GB/s


@dataclass(frozen=True, slots=True)
class Machine:
    """A whole target: devices, host, backend, and (for cloud instances) its price."""

    id: str  # "scaleway/l4-2-24g", "nvidia-l4-48gb", "rtx-4090", "cpu", "2xl4"
    name: str  # "Scaleway L4-2-24G"
    devices: tuple[Device, ...]
    host_ram_bytes: int
    cpu_cores: int
    backend: Backend
    ram_bandwidth_gb_s: float = 50.0
    disk_read_gb_s: float = 2.0
    unified_memory: bool = False  # Apple M-series, DGX Spark, Strix Halo: GPU memory is host RAM
    gpu_class: str = ""  # shared values key: "nvidia-l4-48gb" (empty for CPU-only)
    provider: str = ""  # "Scaleway", "" for GPU classes and workstations
    price_per_hour: float | None = None
    currency: str = ""  # "EUR", "USD"
    price_date: str = ""  # ISO date of the price
    source: str = ""

    @property
    def vram_bytes(self) -> int:
        return sum(d.memory_bytes for d in self.devices)

    @property
    def gpu_count(self) -> int:
        return len(self.devices)
