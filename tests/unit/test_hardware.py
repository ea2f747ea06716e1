"""The hardware catalog: data validation, loader errors, target specs, backends, GPU classes, local detection."""

from __future__ import annotations

import copy
import functools
import os
import re
import runpy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from servefit import hardware as hw
from servefit.errors import CatalogError, OptionsError, UnknownHardwareError
from servefit.machine import Backend, Machine

GIB = 1 << 30
MIB = 1 << 20
DATA = Path(hw.__file__).parent / "catalog" / "data"
LLAMA_CPP = Path("/root/.cache/servefit/src/llama_cpp_python-0.3.36/vendor/llama.cpp")


@functools.cache
def _raw(name: str) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rows = yaml.load((DATA / name).read_text(encoding="utf-8"), Loader=loader)
    assert isinstance(rows, list)
    return rows


def raw(name: str) -> list[dict[str, Any]]:
    """The rows of a data file as plain YAML (a fresh copy: tests break them)."""
    return copy.deepcopy(_raw(name))


# -- data ------------------------------------------------------------------------------------------


def test_every_row_of_every_file_names_a_source() -> None:
    for name in ("gpus.yaml", "machines.yaml", "workstations.yaml"):
        for row in raw(name):
            assert isinstance(row.get("source"), str) and len(row["source"].strip()) >= 5, (name, row)


def test_gpu_catalog_size_and_required_models() -> None:
    gpus = {g.id: g for g in hw.list_gpus()}
    assert len(gpus) >= 35
    assert len(gpus) == len(raw("gpus.yaml"))  # ids unique
    required = [
        "nvidia-rtx-3090", "nvidia-rtx-4080", "nvidia-rtx-4090", "nvidia-rtx-5090", "nvidia-rtx-pro-6000",
        "apple-m2-ultra", "apple-m3-max", "apple-m3-ultra", "apple-m4-max", "nvidia-gb10", "amd-ryzen-ai-max-395",
        "amd-mi300x", "nvidia-l4", "nvidia-l40s", "nvidia-h100-pcie", "nvidia-h100-sxm",
    ]  # fmt: skip
    assert [g for g in required if g not in gpus] == []
    for gpu in gpus.values():
        assert gpu.memory_bytes > 0 and gpu.bandwidth_gb_s > 0 and gpu.fp16_tflops > 0, gpu.id
        assert gpu.memory_bytes <= round(gpu.memory_gib * GIB), gpu.id
    assert all(gpus[g].unified_memory for g in ("apple-m3-ultra", "nvidia-gb10", "amd-ryzen-ai-max-395"))
    assert not gpus["nvidia-rtx-4090"].unified_memory


def test_gpu_units_are_converted_from_the_file() -> None:
    rows = {row["id"]: row for row in raw("gpus.yaml")}
    l4 = hw.find_gpu("nvidia-l4")
    assert l4 is not None
    assert l4.memory_bytes == rows["nvidia-l4"]["memory_reported_mib"] * MIB  # what the driver reports
    a100 = hw.find_gpu("nvidia-a100-pcie-80gb")
    assert a100 is not None and a100.memory_bytes == 80 * GIB  # marketed GiB when nothing is reported
    assert a100.pcie_gb_s == pytest.approx(16 * 1.969 * 0.8, abs=0.05)  # PCIe 4.0 x16 at 80%


def test_cloud_instances_count_providers_and_completeness() -> None:
    instances = hw.list_cloud_instances()
    assert len(instances) >= 150
    assert len({i.id for i in instances}) == len(instances)
    providers = {i.provider for i in instances}
    assert len(providers) >= 8
    assert {"Scaleway", "OVHcloud", "AWS", "GCP", "Azure", "Hetzner", "Lambda", "RunPod"} <= providers
    complete = [i for i in instances if i.vcpus and i.ram_bytes and i.price_per_hour and i.currency and i.price_date]
    assert len(complete) >= 150
    for inst in instances:
        assert re.fullmatch(r"[a-z0-9.()-]+/[a-z0-9._-]+", inst.id), inst.id
        if inst.price_per_hour is not None:
            assert inst.currency in ("EUR", "USD") and re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", inst.price_date)
        else:
            assert inst.notes  # says why


@pytest.mark.parametrize(
    ("instance", "gpu", "count"),
    [
        ("L4-1-24G", "nvidia-l4", 1), ("L4-2-24G", "nvidia-l4", 2), ("L4-4-24G", "nvidia-l4", 4),
        ("L4-8-24G", "nvidia-l4", 8), ("L40S-1-48G", "nvidia-l40s", 1), ("L40S-2-48G", "nvidia-l40s", 2),
        ("L40S-4-48G", "nvidia-l40s", 4), ("L40S-8-48G", "nvidia-l40s", 8), ("H100-1-80G", "nvidia-h100-pcie", 1),
        ("H100-2-80G", "nvidia-h100-pcie", 2), ("H100-SXM-2-80G", "nvidia-h100-sxm", 2),
        ("H100-SXM-4-80G", "nvidia-h100-sxm", 4), ("H100-SXM-8-80G", "nvidia-h100-sxm", 8),
    ],
)  # fmt: skip
def test_scaleway_required_instances(instance: str, gpu: str, count: int) -> None:
    machine = hw.resolve_target(f"scaleway/{instance}")
    assert machine.provider == "Scaleway"
    assert [d.gpu_id for d in machine.devices] == [gpu] * count
    assert machine.gpu_class == hw.gpu_class_id(gpu, count)


def test_ram_units_follow_the_source() -> None:
    # Scaleway's products API answers L4-2-24G with ncpus 16, ram 103079215104 (bytes), hourly_price 1.575 (EUR);
    # AWS lists g5.xlarge as 4 vCPUs and 16 GiB.
    scaleway = hw.resolve_target("scaleway/l4-2-24g")
    assert (scaleway.cpu_cores, scaleway.host_ram_bytes) == (16, 103079215104)
    assert (scaleway.price_per_hour, scaleway.currency) == (1.575, "EUR")
    aws = hw.resolve_target("aws/g5.xlarge")
    assert (aws.cpu_cores, aws.host_ram_bytes) == (4, 16 * GIB)
    assert aws.price_per_hour is not None and aws.currency == "USD"


def test_workstations_and_cpu_targets() -> None:
    kinds = {m.id: hw.target_kind(m.id) for m in hw.list_targets()}
    for ws in ("rtx-3090", "rtx-4080", "rtx-4090", "rtx-5090", "rtx-pro-6000", "mac-studio-m3-ultra-512gb",
               "dgx-spark", "strix-halo-128gb"):  # fmt: skip
        assert kinds[ws] == "workstation"
    assert kinds["cpu"] == "cpu"
    mac = hw.resolve_target("mac-studio-m3-ultra-512gb")
    assert mac.unified_memory and mac.backend is Backend.METAL
    assert mac.host_ram_bytes == 512 * GIB
    assert 0 < mac.vram_bytes < mac.host_ram_bytes  # the GPU's share of the unified pool
    assert mac.ram_bandwidth_gb_s == 819  # unified: host RAM is the GPU's memory


# -- loader errors ---------------------------------------------------------------------------------


def test_gpu_row_without_source_names_file_row_and_field() -> None:
    rows = raw("gpus.yaml")
    del rows[1]["source"]
    with pytest.raises(CatalogError) as info:
        hw.parse_gpu_rows(rows, "gpus.yaml")
    err = info.value
    assert (err.path, err.row, err.field) == ("gpus.yaml", f"row 2 ({rows[1]['id']})", "source")
    assert str(err).startswith(f"catalog file gpus.yaml, row 2 ({rows[1]['id']}), field 'source':")


@pytest.mark.parametrize(
    ("field", "value"), [("bandwidth_gb_s", -1), ("memory_gib", 0), ("fp16_tflops", "fast"), ("vendor", "Acme")]
)
def test_gpu_row_with_bad_number_or_value(field: str, value: object) -> None:
    rows = raw("gpus.yaml")
    rows[3][field] = value
    with pytest.raises(CatalogError) as info:
        hw.parse_gpu_rows(rows)
    assert info.value.field == field and info.value.row == f"row 4 ({rows[3]['id']})"


def test_duplicate_gpu_id_and_alias_are_rejected() -> None:
    rows = raw("gpus.yaml")
    rows.append(dict(rows[0]))
    with pytest.raises(CatalogError, match=r"duplicate of row 1") as info:
        hw.parse_gpu_rows(rows)
    assert info.value.field == "id"
    rows = raw("gpus.yaml")
    rows[2]["aliases"] = [*rows[2].get("aliases", []), rows[0]["aliases"][0]]
    with pytest.raises(CatalogError, match="duplicate"):
        hw.parse_gpu_rows(rows)


def test_machine_row_errors() -> None:
    gpu_ids = [g.id for g in hw.list_gpus()]
    rows = raw("machines.yaml")
    rows[5]["gpu"] = "nvidia-l5"
    with pytest.raises(CatalogError) as info:
        hw.parse_machine_rows(rows, gpu_ids, "machines.yaml")
    assert info.value.field == "gpu" and "unknown GPU id 'nvidia-l5'" in str(info.value)

    rows = raw("machines.yaml")
    priced = next(i for i, r in enumerate(rows) if r.get("price_per_hour"))
    del rows[priced]["currency"]
    with pytest.raises(CatalogError) as info:
        hw.parse_machine_rows(rows, gpu_ids)
    assert (
        info.value.field == "currency"
        and info.value.row is not None
        and info.value.row.startswith(f"row {priced + 1} (")
    )

    rows = raw("machines.yaml")
    rows[0]["vcpus"] = 0
    with pytest.raises(CatalogError, match=r"row 1 \(scaleway/render-s\), field 'vcpus'"):
        hw.parse_machine_rows(rows, gpu_ids)

    rows = raw("machines.yaml")
    rows.append(dict(rows[0], instance="Render-S"))  # same id once lower-cased
    with pytest.raises(CatalogError, match="duplicate"):
        hw.parse_machine_rows(rows, gpu_ids)


def test_broken_yaml_file_and_wrong_shape() -> None:
    with pytest.raises(CatalogError, match="expected a list of rows"):
        hw.parse_gpu_rows({"gpus": []})
    with pytest.raises(CatalogError, match=r"row 1: expected a mapping"):
        hw.parse_workstation_rows(["rtx-4090"], [])
    with pytest.raises(CatalogError, match=r"^catalog file gpus.yaml: invalid YAML \(") as info:
        hw.parse_yaml("- id: nvidia-l4\n  aliases: [l4\n", "gpus.yaml")
    assert info.value.path == "gpus.yaml" and "\n" not in str(info.value)


# -- target specs ----------------------------------------------------------------------------------


def test_catalog_ids_are_case_insensitive() -> None:
    a = hw.resolve_target("scaleway/l4-2-24g")
    assert hw.resolve_target("Scaleway/L4-2-24G") is a
    assert hw.resolve_target("  SCALEWAY/l4-2-24G ") is a
    assert a.name == "Scaleway L4-2-24G" and a.gpu_count == 2


@pytest.mark.parametrize("spec", ["2xL4", "2xl4", "2 x L4", "2×L4", "2xnvidia-l4", "l4x2", "nvidia-l4-48gb", "2*L4"])
def test_count_and_gpu_specs_name_the_gpu_class(spec: str) -> None:
    machine = hw.resolve_target(spec)
    assert machine.id == "nvidia-l4-48gb" and hw.target_kind(machine.id) == "gpu-class"
    assert [d.gpu_id for d in machine.devices] == ["nvidia-l4", "nvidia-l4"]
    assert machine.backend is Backend.CUDA13


def test_other_count_specs() -> None:
    h100 = hw.resolve_target("1xH100-80G")
    assert [d.gpu_id for d in h100.devices] == ["nvidia-h100-pcie"]
    l40s = hw.resolve_target("4xL40S")
    assert l40s.gpu_count == 4 and l40s.id == "nvidia-l40s-192gb"
    sxm = hw.resolve_target("8xh100-sxm")
    assert sxm.gpu_count == 8 and sxm.devices[0].gpu_id == "nvidia-h100-sxm"
    odd = hw.resolve_target("3xL4")  # not sold anywhere: built on demand
    assert odd.id == "nvidia-l4-72gb" and odd.gpu_count == 3
    assert hw.resolve_target("l4").id == "nvidia-l4-24gb"
    with pytest.raises(OptionsError):
        hw.resolve_target("0xL4")


def test_bare_gpu_class_default_host() -> None:
    machine = hw.resolve_target("2xL4")
    l4 = hw.find_gpu("l4")
    assert l4 is not None
    ram, cores = hw.default_host(l4, 2)
    assert (machine.host_ram_bytes, machine.cpu_cores) == (ram, cores) == (96 * GIB, 16)
    single = hw.resolve_target("1xl4")
    assert single.host_ram_bytes == 48 * GIB
    assert hw.resolve_target("1xT4").host_ram_bytes == 32 * GIB  # floor


def test_cpu_target() -> None:
    cpu = hw.resolve_target("cpu")
    assert cpu.devices == () and cpu.backend is Backend.CPU and cpu.gpu_class == ""
    assert cpu.host_ram_bytes > 0 and cpu.cpu_cores > 0


def test_overrides() -> None:
    machine = hw.resolve_target("2xL4", vram_bytes=40 * GIB, ram_bytes=128 * GIB)
    assert [d.memory_bytes for d in machine.devices] == [20 * GIB, 20 * GIB]
    assert machine.host_ram_bytes == 128 * GIB
    assert hw.resolve_target("2xL4").host_ram_bytes == 96 * GIB  # the catalog entry is untouched
    with pytest.raises(OptionsError, match="no GPU"):
        hw.resolve_target("cpu", vram_bytes=GIB)
    with pytest.raises(OptionsError):
        hw.resolve_target("cpu", ram_bytes=-5)


def test_unified_memory_gpu_as_count_spec_points_to_workstations() -> None:
    with pytest.raises(UnknownHardwareError) as info:
        hw.resolve_target("1xm3-ultra")
    assert "mac-studio-m3-ultra-512gb" in info.value.suggestions


# -- suggestions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("scaleway/l4-3-24g", "scaleway/l4-2-24g"), ("rtx4090", "rtx-4090"), ("nvidia-l4-46gb", "nvidia-l4-48gb"),
     ("aws/g5.xlarg", "aws/g5.xlarge"), ("h1000", "h100")],
)  # fmt: skip
def test_unknown_ids_suggest_the_closest(spec: str, expected: str) -> None:
    with pytest.raises(UnknownHardwareError) as info:
        hw.resolve_target(spec)
    assert expected in info.value.suggestions
    assert str(info.value).startswith(f"unknown hardware {spec!r}: did you mean ")
    assert len(info.value.suggestions) <= 3


def test_nonsense_gets_a_clean_error() -> None:
    with pytest.raises(UnknownHardwareError, match=r"^unknown hardware 'zzzz-qqq'"):
        hw.resolve_target("zzzz-qqq")
    with pytest.raises(UnknownHardwareError):
        hw.resolve_target("")


# -- backends --------------------------------------------------------------------------------------


def _gpu(**kw: Any) -> hw.Gpu:
    base = hw.find_gpu("l4")
    assert base is not None
    return hw.Gpu(**{**{f: getattr(base, f) for f in hw.Gpu.__dataclass_fields__}, **kw})


def test_backend_rules() -> None:
    by_id = {g.id: hw.backend_for(g) for g in hw.list_gpus()}
    assert by_id["nvidia-t4"] is Backend.CUDA13  # 7.5: the oldest the CUDA 13 image builds
    assert by_id["nvidia-v100-16gb"] is Backend.CUDA12  # 7.0: dropped by CUDA 13
    assert by_id["nvidia-p100"] is Backend.CUDA12
    assert by_id["nvidia-rtx-5090"] is Backend.CUDA13 and by_id["nvidia-gb10"] is Backend.CUDA13
    assert by_id["apple-m3-ultra"] is Backend.METAL
    assert by_id["amd-mi300x"] is Backend.ROCM and by_id["amd-ryzen-ai-max-395"] is Backend.ROCM
    assert by_id["amd-mi355x"] is Backend.VULKAN  # gfx950 is not built into the ROCm image
    assert hw.backend_for(_gpu(vendor="AMD", compute_capability="", gfx_target="gfx1010")) is Backend.VULKAN
    assert hw.backend_for(_gpu(vendor="Intel", compute_capability="")) is Backend.VULKAN
    assert hw.backend_for(_gpu(compute_capability="6.1")) is Backend.CUDA12
    assert hw.backend_for(None) is Backend.CPU
    assert hw.resolve_target("ovhcloud/t1-45").backend is Backend.CUDA12  # V100 instance


def test_backend_rules_match_llama_cpp_build_files() -> None:
    cmake = LLAMA_CPP / "ggml/src/ggml-cuda/CMakeLists.txt"
    dockerfile = LLAMA_CPP / ".devops/rocm.Dockerfile"
    if not cmake.exists() or not dockerfile.exists():
        pytest.skip("llama.cpp source tree not unpacked")
    text = cmake.read_text()
    # below CUDA 13 the default list adds Maxwell/Pascal/Volta; from 13 on it starts at 75
    old = re.search(r'VERSION_LESS "13"\)\s*list\(APPEND CMAKE_CUDA_ARCHITECTURES ([^)]*)\)', text)
    assert old is not None and old.group(1).split() == ["50-virtual", "61-virtual", "70-virtual"]
    common = re.search(r"endif \(\)\s*list\(APPEND CMAKE_CUDA_ARCHITECTURES ([^)]*)\)", text)
    assert common is not None
    lowest = min(int(re.match(r"\d+", a).group()) for a in common.group(1).split())  # type: ignore[union-attr]
    assert (lowest // 10, lowest % 10) == hw.CUDA13_MIN_COMPUTE_CAPABILITY
    targets = re.search(r"ROCM_DOCKER_ARCH='([^']*)'", dockerfile.read_text())
    assert targets is not None and set(targets.group(1).split(";")) == hw.ROCM_IMAGE_GFX_TARGETS


# -- GPU classes -----------------------------------------------------------------------------------


def test_gpu_class_id() -> None:
    assert hw.gpu_class_id("nvidia-l4", 2) == "nvidia-l4-48gb"
    assert hw.gpu_class_id("nvidia-h200", 1) == "nvidia-h200-141gb"
    with pytest.raises(UnknownHardwareError):
        hw.gpu_class_id("nvidia-l5", 1)
    with pytest.raises(OptionsError):
        hw.gpu_class_id("nvidia-l4", 0)


def test_gpu_classes_are_shared_across_providers() -> None:
    by_class: dict[str, set[str]] = {}
    for machine in hw.list_targets():
        if hw.target_kind(machine.id) == "cloud":
            by_class.setdefault(machine.gpu_class, set()).add(machine.provider)
    assert {"Scaleway", "OVHcloud", "AWS", "GCP", "RunPod"} <= by_class["nvidia-l4-24gb"]
    assert {"Scaleway", "GCP"} <= by_class["nvidia-l4-48gb"]
    assert len([c for c, providers in by_class.items() if len(providers) >= 2]) >= 10


def test_every_instance_has_the_devices_of_its_class() -> None:
    for machine in hw.list_targets():
        if hw.target_kind(machine.id) in ("cloud", "workstation") and not machine.unified_memory:
            cls = hw.resolve_target(machine.gpu_class)
            assert hw.target_kind(cls.id) == "gpu-class"
            assert cls.devices == machine.devices, machine.id
            assert cls.backend is machine.backend


def test_targets_are_cached_and_fast() -> None:
    assert hw.list_targets() is hw.list_targets()
    assert hw.list_gpus() is hw.list_gpus()
    specs = ["scaleway/l4-2-24g", "nvidia-l4-48gb", "rtx-4090", "2xL4", "cpu"]
    start = time.perf_counter()
    for _ in range(2000):
        for spec in specs:
            hw.resolve_target(spec)
    assert time.perf_counter() - start < 2.0  # 10,000 resolutions


def test_target_ids_unique_and_machines_well_formed() -> None:
    targets = hw.list_targets()
    assert len({m.id for m in targets}) == len(targets)
    for m in targets:
        assert isinstance(m, Machine) and m.host_ram_bytes > 0 and m.cpu_cores > 0 and m.source
        assert all(d.memory_bytes > 0 and d.bandwidth_gb_s > 0 and d.pcie_gb_s > 0 for d in m.devices)
        assert m.ram_bandwidth_gb_s > 0 and m.disk_read_gb_s > 0


# -- local -----------------------------------------------------------------------------------------


def test_local_detection_without_gpus_reads_this_machine() -> None:
    machine = hw.resolve_target("local")
    assert machine.id == "local" and machine.cpu_cores == os.cpu_count()
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read_text()).group(1))  # type: ignore[union-attr]
        assert machine.host_ram_bytes == total_kib * 1024
    if not machine.devices:
        assert machine.backend is Backend.CPU


def test_local_detection_with_nvml_devices(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       98304000 kB\nMemFree: 1 kB\n")
    probe = [
        {"name": "NVIDIA L4", "memory_bytes": 23034 * MIB, "compute_capability": "8.9", "bus_width_bits": 192,
         "memory_clock_mhz": 6251, "pcie_gen": 4, "pcie_lanes": 16},
        {"name": "Tesla V100-SXM2-16GB", "memory_bytes": 16 * GIB, "compute_capability": "7.0"},
    ]  # fmt: skip
    machine = hw.detect_local(probe=lambda: probe, meminfo_path=str(meminfo))
    assert machine.host_ram_bytes == 98304000 * 1024
    l4, v100 = machine.devices
    assert l4.gpu_id == "nvidia-l4" and l4.bandwidth_gb_s == pytest.approx(300.0, abs=0.1)
    assert l4.memory_bytes == 23034 * MIB and l4.pcie_gb_s == hw.pcie_effective_gb_s(4, 16)
    assert v100.gpu_id == "nvidia-v100-16gb" and v100.bandwidth_gb_s == 900
    assert machine.backend is Backend.CUDA12  # the oldest GPU decides the image


def test_local_detection_survives_a_missing_meminfo(tmp_path: Path) -> None:
    machine = hw.detect_local(probe=list, meminfo_path=str(tmp_path / "absent"))
    assert machine.devices == () and machine.host_ram_bytes >= 0


# -- generated docs --------------------------------------------------------------------------------


def test_docs_page_is_generated_from_the_data() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_hardware_docs.py"
    render = runpy.run_path(str(script))["render"]
    text = render()
    doc = script.parent.parent / "docs" / "hardware.md"
    assert doc.read_text(encoding="utf-8") == text, "run: python scripts/gen_hardware_docs.py"
    assert f"**{len(hw.list_gpus())} GPUs**" in text
    assert f"**{len(hw.list_cloud_instances())} cloud instance types**" in text
    items: list[hw.Gpu | hw.CloudInstance | hw.Workstation] = [
        *hw.list_gpus(),
        *hw.list_cloud_instances(),
        *hw.list_workstations(),
    ]
    for item in items:
        assert item.source.replace("|", "\\|") in text
        assert f"`{item.id}`" in text


@pytest.mark.parametrize(
    ("nvml_name", "gpu_id"),
    [("NVIDIA H100 80GB HBM3", "nvidia-h100-sxm"), ("NVIDIA H100 PCIe", "nvidia-h100-pcie"),
     ("NVIDIA A100-SXM4-80GB", "nvidia-a100-sxm-80gb"), ("NVIDIA A100 80GB PCIe", "nvidia-a100-pcie-80gb"),
     ("NVIDIA L40S", "nvidia-l40s"), ("NVIDIA L4", "nvidia-l4"), ("NVIDIA L40", "nvidia-l40"),
     ("NVIDIA GeForce RTX 4090", "nvidia-rtx-4090"), ("Tesla T4", "nvidia-t4"), ("NVIDIA A10G", "nvidia-a10g"),
     ("NVIDIA RTX 6000 Ada Generation", "nvidia-rtx-6000-ada"), ("Tesla P100-PCIE-16GB", "nvidia-p100")],
)  # fmt: skip
def test_nvml_names_map_to_catalog_gpus(nvml_name: str, gpu_id: str) -> None:
    # names as nvidia-smi / NVML print them
    probe = [{"name": nvml_name, "memory_bytes": 8 * GIB}]
    (device,) = hw.detect_local(probe=lambda: probe).devices
    assert device.gpu_id == gpu_id and device.memory_bytes == 8 * GIB


def test_unknown_local_gpu_is_kept_with_what_nvml_says() -> None:
    probe = [{"name": "NVIDIA Future X1", "memory_bytes": 40 * GIB, "compute_capability": "13.0",
              "bus_width_bits": 512, "memory_clock_mhz": 2000}]  # fmt: skip
    machine = hw.detect_local(probe=lambda: probe)
    (device,) = machine.devices
    assert device.gpu_id == "nvidia-future-x1" and device.bandwidth_gb_s == 256.0
    assert machine.backend is Backend.CUDA13 and machine.gpu_class == ""
