"""This machine as a target (``--on local``): NVIDIA GPUs through NVML, RAM, CPU cores.

NVML comes from ``nvidia-ml-py`` when it is importable; without it (or without a driver) the
machine is CPU only. Each GPU found is matched to the catalog by name for the figures NVML does
not report (FP16 throughput), and measured where it can be (memory bus width and clock give the
bandwidth, the PCIe link gives the copy bandwidth).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from collections.abc import Callable, Mapping
from typing import Any

from servefit.catalog.hardware_rows import slug
from servefit.hardware import (
    _PCIE_GB_S_PER_LANE,
    CUDA13_MIN_COMPUTE_CAPABILITY,
    LOCAL_TARGET_ID,
    Gpu,
    _gpu_index,
    gpu_class_id,
    list_gpus,
    pcie_effective_gb_s,
)
from servefit.machine import Backend, Device, Machine

__all__ = ["NvmlProbe", "detect_local"]


NvmlProbe = Callable[[], list[dict[str, Any]]]


def _meminfo_total_bytes(path: str = "/proc/meminfo") -> int:
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _nvml_probe() -> list[dict[str, Any]]:
    """NVIDIA GPUs through NVML (nvidia-ml-py); an empty list without the library or a driver."""
    try:
        import pynvml  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return []
    found: list[dict[str, Any]] = []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no usable NVIDIA GPU
        return []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            info: dict[str, Any] = {
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
            }
            for key, call in (
                ("compute_capability", lambda h=handle: "{}.{}".format(*pynvml.nvmlDeviceGetCudaComputeCapability(h))),
                ("bus_width_bits", lambda h=handle: int(pynvml.nvmlDeviceGetMemoryBusWidth(h))),
                ("memory_clock_mhz", lambda h=handle: int(pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM))),
                ("pcie_gen", lambda h=handle: int(pynvml.nvmlDeviceGetMaxPcieLinkGeneration(h))),
                ("pcie_lanes", lambda h=handle: int(pynvml.nvmlDeviceGetMaxPcieLinkWidth(h))),
            ):
                try:
                    info[key] = call()
                except Exception:  # not supported on this GPU/driver: leave the figure out
                    continue
            found.append(info)
    except Exception:
        return found
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return found


def _match_catalog_gpu(name: str) -> Gpu | None:
    """The catalog GPU an NVML name denotes (``NVIDIA GeForce RTX 4090`` -> nvidia-rtx-4090): the longest
    catalog name or alias found in it as whole words."""

    def words(text: str) -> str:
        return " " + re.sub(r"[\s_-]+", " ", text.lower().replace("geforce ", "")).strip() + " "

    lowered = words(name)
    best: Gpu | None = None
    best_len = 0
    for gpu in list_gpus():
        for candidate in (gpu.name, *gpu.aliases):
            key = words(candidate)
            if key.strip() and key in lowered and len(key) > best_len:
                best, best_len = gpu, len(key)
    return best


def _local_device(info: Mapping[str, Any]) -> tuple[Device, Gpu | None]:
    gpu = _match_catalog_gpu(str(info["name"]))
    bandwidth = gpu.bandwidth_gb_s if gpu else 0.0
    if "bus_width_bits" in info and "memory_clock_mhz" in info:
        # double data rate: bytes per transfer x transfers per second
        bandwidth = info["bus_width_bits"] / 8 * info["memory_clock_mhz"] * 2 / 1000
    pcie = gpu.pcie_gb_s if gpu else 25.0
    if "pcie_gen" in info and "pcie_lanes" in info and info["pcie_gen"] in _PCIE_GB_S_PER_LANE:
        pcie = pcie_effective_gb_s(int(info["pcie_gen"]), int(info["pcie_lanes"]))
    device = Device(
        name=str(info["name"]),
        gpu_id=gpu.id if gpu else slug(str(info["name"])),
        memory_bytes=int(info["memory_bytes"]),
        bandwidth_gb_s=round(bandwidth, 1),
        fp16_tflops=gpu.fp16_tflops if gpu else 0.0,
        int8_tops=(gpu.int8_tops or 0.0) if gpu else 0.0,
        compute_capability=str(info.get("compute_capability") or (gpu.compute_capability if gpu else "")),
        pcie_gb_s=pcie,
    )
    return device, gpu


def detect_local(*, probe: NvmlProbe | None = None, meminfo_path: str = "/proc/meminfo") -> Machine:
    """This machine: NVIDIA GPUs through NVML when nvidia-ml-py is importable, RAM, CPU cores."""
    ram = _meminfo_total_bytes(meminfo_path)
    cores = os.cpu_count() or 1
    infos = (probe or _nvml_probe)()
    devices: list[Device] = []
    backend = Backend.CPU
    for info in infos:
        device, _gpu = _local_device(info)
        devices.append(device)
    if devices:
        ccs = [d.compute_capability for d in devices if d.compute_capability]
        lowest = min((tuple(int(p) for p in cc.split(".")) for cc in ccs), default=(0, 0))
        backend = Backend.CUDA13 if lowest >= CUDA13_MIN_COMPUTE_CAPABILITY else Backend.CUDA12
    names = ", ".join(sorted({d.name for d in devices})) or "no GPU"
    gpu_class = ""
    if devices and len({d.gpu_id for d in devices}) == 1 and devices[0].gpu_id in _gpu_index():
        gpu_class = gpu_class_id(devices[0].gpu_id, len(devices))
    return Machine(
        id=LOCAL_TARGET_ID,
        name=f"this machine ({platform.node() or 'local'}: {len(devices)} GPU, {names})",
        devices=tuple(devices),
        host_ram_bytes=ram,
        cpu_cores=cores,
        backend=backend,
        gpu_class=gpu_class,
        source="detected: /proc/meminfo, os.cpu_count(), NVML",
    )
