"""Plans built directly (as the planner would return them) for the deployment tests.

Each case varies what the renderers must carry: model family (dense, MoE, hybrid, recurrent),
backend (CPU, CUDA 12/13, ROCm, Vulkan), GPU count, placement strategy (all on GPU, experts on the
host with --n-cpu-moe or -ot, partial offload, CPU only, weights read from disk), KV cache types,
flash attention, split mode and tensor split, slots and --cache-ram.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from servefit.plan import GIB, MIB, DeviceUsage, Plan, Strategy


@dataclass(frozen=True)
class ModelCase:
    model_id: str
    name: str
    repo: str
    layers: int
    model_bytes: int
    moe_layers: int  # 0 for dense
    family: str  # dense | moe | hybrid | recurrent


@dataclass(frozen=True)
class TargetCase:
    target_id: str
    name: str
    gpu_class: str
    backend: str
    gpu_name: str  # product name as llama.cpp prints it ("" for CPU)
    gpu_count: int
    gpu_bytes: int
    ram_bytes: int


MODELS = (
    ModelCase(
        "llama-3.1-8b-instruct",
        "Llama 3.1 8B Instruct",
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        32,
        5 * GIB,
        0,
        "dense",
    ),
    ModelCase(
        "llama-3.3-70b-instruct",
        "Llama 3.3 70B Instruct",
        "unsloth/Llama-3.3-70B-Instruct-GGUF",
        80,
        40 * GIB,
        0,
        "dense",
    ),
    ModelCase("gemma-3-27b-it", "Gemma 3 27B IT", "ggml-org/gemma-3-27b-it-GGUF", 62, 16 * GIB, 0, "dense"),
    ModelCase("qwen3-30b-a3b", "Qwen3 30B A3B", "unsloth/Qwen3-30B-A3B-GGUF", 48, 18 * GIB, 48, "moe"),
    ModelCase("gpt-oss-120b", "gpt-oss 120B", "ggml-org/gpt-oss-120b-GGUF", 36, 60 * GIB, 36, "moe"),
    ModelCase(
        "nemotron-3-super-120b-a12b",
        "Nemotron 3 Super 120B A12B",
        "unsloth/Nemotron-3-Super-120B-A12B-GGUF",
        88,
        70 * GIB,
        40,
        "hybrid",
    ),
    ModelCase(
        "granite-4.0-h-small", "Granite 4.0 H Small", "ibm-granite/granite-4.0-h-small-GGUF", 40, 19 * GIB, 40, "hybrid"
    ),
    ModelCase("mamba2-2.7b", "Mamba2 2.7B", "example-org/mamba2-2.7b-GGUF", 64, 2 * GIB, 0, "recurrent"),
)

TARGETS = (
    TargetCase("cpu", "CPU only (64 GiB)", "", "cpu", "", 0, 0, 64 * GIB),
    TargetCase(
        "rtx-4090",
        "GeForce RTX 4090",
        "nvidia-rtx-4090-24gb",
        "cuda12",
        "NVIDIA GeForce RTX 4090",
        1,
        24 * GIB,
        64 * GIB,
    ),
    TargetCase(
        "scaleway/l4-2-24g", "Scaleway L4-2-24G", "nvidia-l4-48gb", "cuda12", "NVIDIA L4", 2, 24 * GIB, 96 * GIB
    ),
    TargetCase("4xl40s", "4x L40S", "nvidia-l40s-192gb", "cuda12", "NVIDIA L40S", 4, 48 * GIB, 256 * GIB),
    TargetCase(
        "1xh100-80g", "1x H100 80GB", "nvidia-h100-80gb", "cuda13", "NVIDIA H100 80GB HBM3", 1, 80 * GIB, 240 * GIB
    ),
    TargetCase(
        "8xh100-80g", "8x H100 80GB", "nvidia-h100-640gb", "cuda13", "NVIDIA H100 80GB HBM3", 8, 80 * GIB, 1900 * GIB
    ),
    TargetCase(
        "mi300x", "AMD Instinct MI300X", "amd-mi300x-192gb", "rocm", "AMD Instinct MI300X", 1, 192 * GIB, 512 * GIB
    ),
    TargetCase(
        "2xmi210", "2x AMD Instinct MI210", "amd-mi210-128gb", "rocm", "AMD Instinct MI210", 2, 64 * GIB, 256 * GIB
    ),
    TargetCase(
        "rx-7900-xtx",
        "Radeon RX 7900 XTX",
        "amd-rx-7900-xtx-24gb",
        "vulkan",
        "AMD Radeon RX 7900 XTX",
        1,
        24 * GIB,
        64 * GIB,
    ),
    TargetCase(
        "arc-b580",
        "Intel Arc B580",
        "intel-arc-b580-12gb",
        "vulkan",
        "Intel(R) Arc(TM) B580 Graphics",
        1,
        12 * GIB,
        32 * GIB,
    ),
)

CACHE_TYPES = (("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0"), ("q8_0", "f16"))
QUANTS = ("Q4_K_M", "Q4_K_S", "Q8_0", "IQ4_XS", "MXFP4_MOE", "Q3_K_M", "BF16")


def _strategy_for(model: ModelCase, target: TargetCase, k: int) -> Strategy:
    if target.backend == "cpu":
        return Strategy.DISK if model.model_bytes > target.ram_bytes // 2 and (k // len(TARGETS)) % 2 else Strategy.CPU
    options = [Strategy.GPU, Strategy.PARTIAL_OFFLOAD]
    if model.moe_layers:
        options.append(Strategy.GPU_CPU_MOE)
    return options[k % len(options)]


def make_case(index: int, model: ModelCase, target: TargetCase) -> Plan:
    """One plan with llama-server flags in the shape the planner writes them."""
    strategy = _strategy_for(model, target, index)
    gpus = target.gpu_count if target.backend != "cpu" else 0
    context = (4096, 8192, 16384, 32768, 65536, 131072)[index % 6]
    parallel = (1, 2, 4, 8)[index % 4]
    type_k, type_v = CACHE_TYPES[index % len(CACHE_TYPES)]
    flash = ("on", "off", "auto")[index % 3] if type_v == "f16" else "on"  # quantized V needs flash attention
    if strategy == Strategy.GPU:
        gpu_layers = model.layers + 1
    elif strategy == Strategy.PARTIAL_OFFLOAD:
        gpu_layers = max(1, model.layers // 2)
    elif strategy == Strategy.GPU_CPU_MOE:
        gpu_layers = model.layers + 1
    else:
        gpu_layers = 0
    n_cpu_moe = model.moe_layers // 2 if strategy == Strategy.GPU_CPU_MOE else 0
    args: list[str] = ["-hf", f"{model.repo}:{QUANTS[index % len(QUANTS)]}", "-c", str(context), "-np", str(parallel)]
    if gpus:
        args += ["-ngl", str(gpu_layers)]
        if n_cpu_moe:
            if index % 2:
                args += ["--n-cpu-moe", str(n_cpu_moe)]
            else:
                layers = "|".join(str(i) for i in range(n_cpu_moe))
                args += ["-ot", rf"blk\.({layers})\.ffn_(up|down|gate)_exps\.weight=CPU"]
        if gpus > 1:
            share = ",".join("1" for _ in range(gpus))
            args += ["-sm", "layer", "-ts", share]
    else:
        args += ["-ngl", "0"]
    args += ["-fa", flash, "-ctk", type_k, "-ctv", type_v, "-b", "2048", "-ub", "512"]
    if index % 5 == 0:
        args += ["--cache-ram", str((0, 2048, 8192, -1)[index % 4])]
    if strategy == Strategy.DISK:
        args += ["--load-mode", "mmap"]
    if index % 7 == 0:
        args += ["--host", "0.0.0.0", "--port", "8080", "--metrics"]  # flags the chart owns itself
    weights_gpu = model.model_bytes if strategy in (Strategy.GPU,) else model.model_bytes // 2
    if not gpus:
        weights_gpu = 0
    per_gpu = weights_gpu // gpus if gpus else 0
    devices = [
        DeviceUsage(
            f"{'CUDA' if 'cuda' in target.backend else target.backend.upper()}{i} ({target.gpu_name})",
            "gpu",
            target.gpu_bytes,
            per_gpu,
            GIB // 2,
            0,
            512 * MIB,
            256 * MIB,
        )
        for i in range(gpus)
    ]
    host_weights = model.model_bytes - weights_gpu
    devices.append(DeviceUsage("host", "host", target.ram_bytes, host_weights, 0, 0, 256 * MIB, 512 * MIB))
    ram_required = host_weights + 768 * MIB
    quant = QUANTS[index % len(QUANTS)]
    return Plan(
        model_id=model.model_id,
        model_name=model.name,
        quant=quant,
        target_id=target.target_id,
        target_name=target.name,
        gpu_class=target.gpu_class,
        gguf_repo=model.repo,
        fits=True,
        strategy=strategy,
        reasons=(),
        context=context,
        parallel=parallel,
        gpu_layers=gpu_layers if gpus else 0,
        total_layers=model.layers + 1,
        n_cpu_moe=n_cpu_moe,
        tensor_split=tuple(1.0 for _ in range(gpus)),
        flash_attention=flash == "on",
        cache_type_k=type_k,
        cache_type_v=type_v,
        batch=2048,
        ubatch=512,
        backend=target.backend,
        model_bytes=model.model_bytes,
        vram_total_bytes=target.gpu_bytes * gpus,
        vram_used_bytes=sum(d.total_bytes for d in devices if d.kind == "gpu"),
        ram_total_bytes=target.ram_bytes,
        ram_required_bytes=ram_required,
        reading_from_disk=strategy == Strategy.DISK,
        devices=tuple(devices),
        llama_server_args=tuple(a.replace(QUANTS[index % len(QUANTS)], quant) for a in args),
        warnings=("weights are read from disk: expect well under 1 token/s",) if strategy == Strategy.DISK else (),
        trained_context=131072,
        experts_on_cpu_layers=n_cpu_moe,
        moe_layers=model.moe_layers,
        decode_tok_s=None if index % 3 else 12.5,
    )


def all_cases() -> list[Plan]:
    """Every model on every target (80 plans)."""
    return [make_case(i, m, t) for i, (m, t) in enumerate(itertools.product(MODELS, TARGETS))]


def unfit_plan() -> Plan:
    base = make_case(1, MODELS[4], TARGETS[1])
    from dataclasses import replace

    return replace(
        base,
        fits=False,
        strategy=None,
        reasons=("weights need 60.0 GiB, more than the 24.0 GiB of VRAM and 64.0 GiB of RAM together",),
        llama_server_args=(),
    )
