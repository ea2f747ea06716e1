"""Options and Plan: the inputs of a placement and its result.

A ``Plan`` is frozen and is the single source of truth for every number servefit shows: the CLI,
the JSON, the web pages, the FAQ and the deployment files all read it and never compute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["GIB", "MIB", "DeviceUsage", "FlashAttn", "Options", "Plan", "Strategy"]

MIB = 1024**2
GIB = 1024**3


class FlashAttn(StrEnum):
    ON = "on"
    OFF = "off"
    AUTO = "auto"


class Strategy(StrEnum):
    GPU = "gpu"
    GPU_CPU_MOE = "gpu+cpu-moe"
    PARTIAL_OFFLOAD = "partial-offload"
    CPU = "cpu"
    DISK = "disk"


@dataclass(frozen=True, slots=True)
class Options:
    """What the user asks for; None means "choose for me"."""

    context: int | None = None  # None: the largest that fits, up to context_cap / trained context
    context_cap: int | None = None  # upper bound when searching the largest context
    parallel: int = 1  # llama-server -np
    batch: int = 2048  # -b
    ubatch: int = 512  # -ub
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: FlashAttn = FlashAttn.AUTO
    mmap: bool = True
    gpu_margin_bytes: int = 1024 * MIB  # free memory left on each GPU, as llama.cpp's --fit does
    host_reserved_bytes: int = 2 * GIB  # host RAM kept for the OS and other processes
    gpu_layers: int | None = None  # force -ngl
    n_cpu_moe: int | None = None  # force --n-cpu-moe
    prompt_tokens: int = 4096  # prompt length for prefill / time-to-first-token figures


@dataclass(frozen=True, slots=True)
class DeviceUsage:
    """Memory on one device (a GPU, or the host) by kind of buffer."""

    name: str  # "CUDA0 (NVIDIA L4)", "host"
    kind: str  # "gpu" | "host"
    capacity_bytes: int
    weights_bytes: int
    kv_bytes: int
    recurrent_bytes: int
    compute_bytes: int
    other_bytes: int  # output/logits buffer, runtime/CUDA context overhead, ...

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.recurrent_bytes + self.compute_bytes + self.other_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        return d


@dataclass(frozen=True)
class Plan:
    """How llama.cpp runs one model on one machine with given options, and every buffer it allocates."""

    # what was planned
    model_id: str
    model_name: str
    quant: str
    target_id: str
    target_name: str
    gpu_class: str
    gguf_repo: str  # Hugging Face repo to download from (llama-server -hf REPO:QUANT); "" when unknown
    # the decision
    fits: bool
    strategy: Strategy | None  # None when nothing fits
    reasons: tuple[str, ...]
    context: int
    parallel: int
    gpu_layers: int
    total_layers: int
    n_cpu_moe: int
    tensor_split: tuple[float, ...]
    flash_attention: bool
    cache_type_k: str
    cache_type_v: str
    batch: int
    ubatch: int
    backend: str
    # memory
    model_bytes: int
    vram_total_bytes: int
    vram_used_bytes: int
    ram_total_bytes: int
    ram_required_bytes: int
    reading_from_disk: bool
    devices: tuple[DeviceUsage, ...]
    llama_server_args: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    trained_context: int = 0
    experts_on_cpu_layers: int = 0  # MoE layers whose routed experts stay in host RAM
    moe_layers: int = 0
    unified_memory: bool = False  # the GPU memory is part of system RAM (DGX Spark, Apple, Strix Halo)
    # speed and cost (filled by speed.py; None where unknown)
    decode_tok_s: float | None = None
    decode_tok_s_parallel: float | None = None  # aggregate over `parallel` streams
    prefill_tok_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int = 0
    cost_per_mtok: float | None = None  # at one stream
    cost_per_mtok_parallel: float | None = None
    price_per_hour: float | None = None
    currency: str = ""
    bottleneck: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field, devices with their totals."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "devices":
                out[name] = [d.to_dict() for d in value]
            elif isinstance(value, tuple):
                out[name] = list(value)
            elif isinstance(value, StrEnum):
                out[name] = str(value)
            else:
                out[name] = value
        return out
