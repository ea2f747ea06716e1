"""Placement search: strategies, flags and the plan's internal consistency.

The reference case is NVIDIA Nemotron 3 Super 120B A12B Q4_K_S on a Scaleway L4-2-24G (2x L4 24 GB,
96 GB RAM): its ~78 GB of weights cannot sit in 48 GB of VRAM, so the plan must keep routed
experts on the host with --n-cpu-moe, with RAM checked against 96 GB.
"""

from __future__ import annotations

import dataclasses

import pytest

from configs import LLAMA31_8B
from servefit.errors import OptionsError
from servefit.hardware import resolve_target
from servefit.inventory import spec_from_config
from servefit.machine import Backend, Device, Machine
from servefit.memory import Context, Layout, memory_breakdown
from servefit.model import ModelSpec
from servefit.plan import GIB, FlashAttn, Options, Plan, Strategy
from servefit.planner import make_plan

GB = 10**9


@pytest.fixture(scope="module")
def nemotron_super() -> ModelSpec:
    from servefit.catalog.models import model_spec

    return model_spec("nemotron-3-super-120b-a12b", "Q4_K_S")


@pytest.fixture(scope="module")
def llama8b() -> ModelSpec:
    return spec_from_config(LLAMA31_8B, "Q4_K_M")


@pytest.fixture(scope="module")
def reference_plan(nemotron_super: ModelSpec) -> Plan:
    return make_plan(nemotron_super, resolve_target("scaleway/l4-2-24g"))


def _arg(plan: Plan, flag: str) -> str:
    args = plan.llama_server_args
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def _machine(*gpu_gib: int, ram_gib: int = 128) -> Machine:
    devices = tuple(
        Device(name=f"GPU {g} GiB", gpu_id=f"gpu-{g}", memory_bytes=g * GIB, bandwidth_gb_s=900.0, fp16_tflops=100.0)
        for g in gpu_gib
    )
    return Machine(
        id="test",
        name="test machine",
        devices=devices,
        host_ram_bytes=ram_gib * GIB,
        cpu_cores=16,
        backend=Backend.CUDA12 if devices else Backend.CPU,
    )


def test_reference_case_strategy_and_flags(reference_plan: Plan, nemotron_super: ModelSpec) -> None:
    p = reference_plan
    assert p.fits
    assert p.strategy is Strategy.GPU_CPU_MOE
    assert p.model_bytes > 48 * GB  # the whole model cannot sit in 2 x 24 GB
    assert any("all layers on GPU" in r for r in p.reasons)
    n_layer = nemotron_super.hparams.n_layer
    assert _arg(p, "-ngl") == str(n_layer + 1)
    assert _arg(p, "--n-cpu-moe") == str(p.n_cpu_moe) and p.n_cpu_moe > 0
    assert _arg(p, "-c") == str(p.context)
    assert _arg(p, "-np") == "1"
    ts = [int(x) for x in _arg(p, "-ts").split(",")]
    assert sum(ts) == n_layer + 1 == p.total_layers == p.gpu_layers
    assert "--load-mode" not in p.llama_server_args
    assert p.context % 256 == 0 and 4096 <= p.context <= p.trained_context


def test_reference_case_memory_is_consistent(reference_plan: Plan) -> None:
    p = reference_plan
    gpus = [d for d in p.devices if d.kind == "gpu"]
    host = [d for d in p.devices if d.kind == "host"]
    assert len(gpus) == 2 and len(host) == 1
    margin = 1024 * 1024 * 1024
    for d in gpus:
        assert d.total_bytes <= d.capacity_bytes - margin
        assert d.weights_bytes > 0 and d.kv_bytes > 0 and d.recurrent_bytes > 0
    assert p.vram_used_bytes == sum(d.total_bytes for d in gpus)
    assert p.vram_total_bytes == sum(d.capacity_bytes for d in gpus)
    assert p.ram_required_bytes == host[0].total_bytes
    assert p.ram_total_bytes >= 96 * GB  # 96 GB of RAM (the catalog may state it in GiB)
    assert p.ram_required_bytes <= p.ram_total_bytes - 2 * GIB
    # every weight byte is somewhere: host page cache + GPU buffers >= the loaded tensors
    assert host[0].weights_bytes + sum(d.weights_bytes for d in gpus) >= p.model_bytes * 0.95
    assert p.experts_on_cpu_layers > 0 and p.moe_layers == 40


def test_reference_case_n_cpu_moe_is_the_smallest(reference_plan: Plan, nemotron_super: ModelSpec) -> None:
    machine = resolve_target("scaleway/l4-2-24g")
    fewer = make_plan(nemotron_super, machine, Options(context=4096, n_cpu_moe=reference_plan.n_cpu_moe - 1))
    same = make_plan(nemotron_super, machine, Options(context=4096, n_cpu_moe=reference_plan.n_cpu_moe))
    assert same.fits
    assert not fewer.fits and fewer.reasons


def test_trained_context_trap_is_warned(reference_plan: Plan) -> None:
    # llama.cpp's converter writes 2**20 as Nemotron-H's context length; the plan caps at the model card's
    # trained context and warns that -c 0 would ask for the GGUF's figure.
    from servefit.catalog.models import get_model

    assert reference_plan.trained_context == get_model("nemotron-3-super-120b-a12b").context_trained
    assert reference_plan.context <= reference_plan.trained_context
    assert any("-c 0" in w and "1,048,576" in w for w in reference_plan.warnings)


def test_small_model_fits_on_one_gpu_with_full_context(llama8b: ModelSpec) -> None:
    p = make_plan(llama8b, _machine(80))
    assert p.strategy is Strategy.GPU and p.fits
    assert p.context == 131072  # the trained context fits in 80 GiB
    assert _arg(p, "-ngl") == "33" and "-ts" not in p.llama_server_args
    assert p.gpu_layers == p.total_layers == 33


def test_context_is_the_largest_that_fits(llama8b: ModelSpec) -> None:
    machine = _machine(12)
    p = make_plan(llama8b, machine)
    assert p.fits and p.strategy is Strategy.GPU and p.context < 131072
    flash = p.flash_attention
    layout = Layout(n_gpu=1, gpu_layers=33)
    budget = 12 * GIB - 1024**3

    def total(ctx: int) -> int:
        return memory_breakdown(llama8b, Context(ctx, flash_attn=flash), layout).gpu_total[0]

    assert total(p.context) <= budget < total(p.context + 256)


def test_partial_offload_and_cpu(llama8b: ModelSpec) -> None:
    p = make_plan(llama8b, _machine(4), Options(context=8192))
    assert p.strategy is Strategy.PARTIAL_OFFLOAD
    ngl = int(_arg(p, "-ngl"))
    assert 0 < ngl < 33 and p.gpu_layers == ngl
    cpu = make_plan(llama8b, resolve_target("cpu"), Options(context=8192))
    assert cpu.strategy is Strategy.CPU and cpu.vram_used_bytes == 0
    assert [d.kind for d in cpu.devices] == ["host"]


def test_disk_when_weights_exceed_ram(nemotron_super: ModelSpec) -> None:
    p = make_plan(nemotron_super, _machine(ram_gib=32), Options(context=4096))
    assert p.fits and p.strategy is Strategy.DISK and p.reading_from_disk
    assert any("disk" in w for w in p.warnings)
    no_mmap = make_plan(nemotron_super, _machine(ram_gib=32), Options(context=4096, mmap=False))
    assert not no_mmap.fits and no_mmap.strategy is None and no_mmap.reasons


def test_unequal_gpus_get_layers_in_proportion(llama8b: ModelSpec) -> None:
    p = make_plan(llama8b, _machine(8, 24), Options(context=131072))
    assert p.fits and p.strategy is Strategy.GPU
    small, big = (int(x) for x in _arg(p, "-ts").split(","))
    assert small + big == 33 and small < big
    gpus = [d for d in p.devices if d.kind == "gpu"]
    assert gpus[0].weights_bytes < gpus[1].weights_bytes


def test_nothing_fits() -> None:
    spec = spec_from_config(LLAMA31_8B, "Q4_K_M")
    p = make_plan(spec, _machine(ram_gib=3), Options(context=8192, mmap=False))
    assert not p.fits and p.strategy is None
    assert p.reasons and "nothing fits" in p.reasons[-1]


def test_options_are_validated(llama8b: ModelSpec) -> None:
    with pytest.raises(OptionsError, match="flash attention"):
        make_plan(llama8b, _machine(24), Options(cache_type_v="q8_0", flash_attn=FlashAttn.OFF))
    with pytest.raises(OptionsError):
        make_plan(llama8b, _machine(24), Options(ubatch=4096, batch=2048))
    with pytest.raises(OptionsError):
        make_plan(llama8b, _machine(24), Options(parallel=0))
    with pytest.raises(OptionsError):
        make_plan(llama8b, _machine(24), Options(cache_type_k="q3"))
    with pytest.raises(OptionsError, match="256"):
        make_plan(llama8b, _machine(24), Options(parallel=257))  # LLAMA_MAX_SEQ
    with pytest.raises(OptionsError, match="context"):
        make_plan(llama8b, _machine(24), Options(context=1 << 33))  # n_ctx is a uint32_t


def test_quantized_cache_flags(llama8b: ModelSpec) -> None:
    p = make_plan(llama8b, _machine(24), Options(cache_type_k="q8_0", cache_type_v="q8_0", parallel=4, ubatch=256))
    assert _arg(p, "-ctk") == "q8_0" and _arg(p, "-ctv") == "q8_0" and _arg(p, "-fa") == "on"
    assert _arg(p, "-np") == "4" and _arg(p, "-ub") == "256"
    assert p.context <= 4 * 131072 and p.extra["context_per_slot"] == p.context // 4
    base = make_plan(llama8b, _machine(24), Options(parallel=4, ubatch=256))
    assert p.context >= base.context  # a smaller cache per token leaves room for more context


def test_plan_identifies_model_and_target(llama8b: ModelSpec) -> None:
    spec = dataclasses.replace(llama8b, model_id="llama-3.1-8b", gguf_repo="someone/Llama-3.1-8B-GGUF")
    machine = resolve_target("scaleway/l4-2-24g")
    p = make_plan(spec, machine)
    assert (p.model_id, p.gguf_repo, p.quant) == ("llama-3.1-8b", "someone/Llama-3.1-8B-GGUF", "Q4_K_M")
    assert (p.target_id, p.gpu_class, p.backend) == (machine.id, machine.gpu_class, str(machine.backend))
    d = p.to_dict()
    assert d["strategy"] == "gpu" and isinstance(d["devices"], list)


def test_disk_on_a_gpu_machine_keeps_the_gpus_full(nemotron_super: ModelSpec, llama8b: ModelSpec) -> None:
    # 2x L4 with 32 GB of RAM: the experts that do not fit the GPUs are paged from disk; every layer
    # stays on the GPUs, with the smallest --n-cpu-moe they hold
    machine = resolve_target("scaleway/l4-2-24g", ram_bytes=32 * 10**9)
    p = make_plan(nemotron_super, machine, Options(context=4096))
    assert p.fits and p.strategy is Strategy.DISK and p.reading_from_disk
    assert p.gpu_layers == p.total_layers and p.n_cpu_moe > 0
    assert all(d.total_bytes <= d.capacity_bytes - Options().gpu_margin_bytes for d in p.devices if d.kind == "gpu")
    fewer = make_plan(nemotron_super, machine, Options(context=4096, n_cpu_moe=p.n_cpu_moe - 1))
    assert not fewer.fits and any("needs" in r for r in fewer.reasons)
    # against the same file paged in from disk on the CPU alone (a machine without the GPUs)
    cpu_only = make_plan(nemotron_super, resolve_target("cpu", ram_bytes=32 * 10**9), Options(context=4096))
    assert cpu_only.strategy is Strategy.DISK and cpu_only.gpu_layers == 0
    assert p.decode_tok_s is not None and cpu_only.decode_tok_s is not None
    assert p.decode_tok_s > 5 * cpu_only.decode_tok_s
    # a dense model: the most layers one small GPU holds, the rest paged from disk
    dense = make_plan(llama8b, _machine(4, ram_gib=3), Options(context=4096))
    assert dense.strategy is Strategy.DISK and 0 < dense.gpu_layers < dense.total_layers
    assert not make_plan(llama8b, _machine(4, ram_gib=3), Options(context=4096, gpu_layers=dense.gpu_layers + 1)).fits
