"""Calibrate the speed model on published llama-bench rows and report its error honestly.

    python bench/speed_accuracy.py            # fit, evaluate, write docs/speed-accuracy.md
    python bench/speed_accuracy.py --write    # ... and write src/servefit/catalog/data/speed_calibration.yaml

Data: ``bench/data/llama_bench_calibration.csv`` (a copy of the project's reference file; every row
names its public source). Every row is turned into the same (plan, model, machine) triple that
``servefit.speed`` sees in production and run through the same ``decode_terms`` / ``prefill_terms``
functions; only the few efficiency factors are fitted (per backend, and one prefill compute scale
per GPU architecture family), never anything per row.

Error is reported leave-one-GPU-out: the factors that predict a GPU's rows were fitted without any
row of that GPU (all its GPU counts), and a family scale is only used when another GPU of the same
family remains. In-sample figures are shown next to it for comparison.

Model structure per row: the tensor shapes of the model family (from its config.json hparams,
listed below with sources) with the row's published file size spread over the weight matrices
("a documented approximation": the real file mixes Q4_K and Q6_K tensors; we spread the published
size uniformly over the matrices). The README's "GB" model sizes are GiB (8.03e9 params x 2 bytes =
16.06e9 bytes = 14.96 GiB for Llama 3 8B F16).
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from servefit import speed  # noqa: E402
from servefit.machine import Backend, Device, Machine  # noqa: E402
from servefit.model import Hparams, LayerInfo, ModelSpec, TensorInfo, role_of  # noqa: E402
from servefit.plan import GIB, Plan, Strategy  # noqa: E402

DATA = ROOT / "bench" / "data" / "llama_bench_calibration.csv"
SUPPLEMENT = ROOT / "bench" / "data" / "llama_bench_supplement.csv"
DOC = ROOT / "docs" / "speed-accuracy.md"
CALIBRATION = ROOT / "src" / "servefit" / "catalog" / "data" / "speed_calibration.yaml"

# --------------------------------------------------------------------------------------------
# models: config.json hyperparameters (sources in /work/shared/data/models.yaml restated here)


@dataclass(frozen=True)
class Arch:
    key: str
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_swa: int = 0
    swa_every_other: bool = False
    source: str = ""


ARCHS = {
    # Llama 3 8B and 70B share their shapes with Llama 3.1 (rope scaling aside)
    "Meta-Llama-3-8B": Arch(
        "Meta-Llama-3-8B", "llama", 32, 4096, 32, 8, 128, 14336, 128256,
        source="meta-llama/Llama-3.1-8B-Instruct config.json via github inference-sim/inference-sim@f90a1e3",
    ),
    "Meta-Llama-3-70B": Arch(
        "Meta-Llama-3-70B", "llama", 80, 8192, 64, 8, 128, 28672, 128256,
        source="meta-llama/Llama-3.1-70B-Instruct config.json via github inference-sim/inference-sim@f90a1e3",
    ),
    "gpt-oss 20B MXFP4 MoE": Arch(
        "gpt-oss 20B MXFP4 MoE", "gpt-oss", 24, 2880, 64, 8, 64, 0, 201088,
        n_expert=32, n_expert_used=4, n_ff_exp=2880, n_swa=128, swa_every_other=True,
        source="openai/gpt-oss-20b config (docs.nvidia.com Megatron-Bridge gpt-oss page)",
    ),
}  # fmt: skip

# gpt-oss-20b MXFP4 published size when the row leaves it blank (ggml-org/gpt-oss-20b-GGUF: 11.27 GiB)
GPT_OSS_20B_BYTES = int(11.27 * GIB)
MXFP4_BYTES_PER_WEIGHT = 17 / 32  # 32 values in 16 bytes + one E8M0 scale byte


def _tensors(a: Arch) -> list[tuple[str, tuple[int, ...]]]:
    d, hd = a.n_embd, a.head_dim
    out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (d, a.n_vocab))]
    for il in range(a.n_layer):
        p = f"blk.{il}."
        out += [
            (p + "attn_norm.weight", (d,)),
            (p + "attn_q.weight", (d, a.n_head * hd)),
            (p + "attn_k.weight", (d, a.n_head_kv * hd)),
            (p + "attn_v.weight", (d, a.n_head_kv * hd)),
            (p + "attn_output.weight", (a.n_head * hd, d)),
            (p + "ffn_norm.weight", (d,)),
        ]
        if a.n_expert:
            out += [
                (p + "ffn_gate_inp.weight", (d, a.n_expert)),
                (p + "ffn_gate_exps.weight", (d, a.n_ff_exp, a.n_expert)),
                (p + "ffn_up_exps.weight", (d, a.n_ff_exp, a.n_expert)),
                (p + "ffn_down_exps.weight", (a.n_ff_exp, d, a.n_expert)),
            ]
        else:
            out += [
                (p + "ffn_gate.weight", (d, a.n_ff)),
                (p + "ffn_up.weight", (d, a.n_ff)),
                (p + "ffn_down.weight", (a.n_ff, d)),
            ]
    out += [("output_norm.weight", (d,)), ("output.weight", (d, a.n_vocab))]
    return out


def model_spec(key: str | Arch, quant: str, file_bytes: int) -> ModelSpec:
    """An approximate ModelSpec: real shapes, the published size spread over the weight matrices."""
    a = key if isinstance(key, Arch) else ARCHS[key]
    shapes = _tensors(a)

    def n_el(shape: tuple[int, ...]) -> int:
        return math.prod(shape)

    norm_bytes = sum(4 * n_el(s) for _, s in shapes if len(s) == 1)
    if quant in ("F16", "BF16"):
        matrix_type, bpw = quant, 2.0
        expert_type, expert_bpw = quant, 2.0
    elif a.n_expert:  # MXFP4 experts, the rest (Q8_0 in ggml-org's file) fills the published size
        expert_type, expert_bpw = "MXFP4", MXFP4_BYTES_PER_WEIGHT
        expert_bytes = sum(n_el(s) for n, s in shapes if "_exps" in n) * expert_bpw
        rest = sum(n_el(s) for n, s in shapes if len(s) > 1 and "_exps" not in n)
        matrix_type, bpw = "Q8_0", (file_bytes - expert_bytes - norm_bytes) / rest
    else:
        matrices = sum(n_el(s) for _, s in shapes if len(s) > 1)
        matrix_type, bpw = "Q4_K", (file_bytes - norm_bytes) / matrices
        expert_type, expert_bpw = matrix_type, bpw
    tensors: list[TensorInfo] = []
    for name, shape in shapes:
        if len(shape) == 1:
            gtype, nbytes = "F32", 4 * n_el(shape)
        elif "_exps" in name:
            gtype, nbytes = expert_type, round(n_el(shape) * expert_bpw)
        else:
            gtype, nbytes = matrix_type, round(n_el(shape) * bpw)
        layer = int(name.split(".")[1]) if name.startswith("blk.") else None
        tensors.append(TensorInfo(name, shape, gtype, nbytes, layer, role_of(name)))
    swa = tuple(a.swa_every_other and il % 2 == 0 for il in range(a.n_layer))
    hp = Hparams(
        n_layer=a.n_layer,
        n_embd=a.n_embd,
        n_vocab=a.n_vocab,
        n_ctx_train=131072,
        n_head=(a.n_head,) * a.n_layer,
        n_head_kv=(a.n_head_kv,) * a.n_layer,
        n_embd_head_k=a.head_dim,
        n_embd_head_v=a.head_dim,
        n_ff=(a.n_ff,) * a.n_layer,
        n_expert=a.n_expert,
        n_expert_used=a.n_expert_used,
        n_ff_exp=a.n_ff_exp,
        n_swa=a.n_swa,
        swa_layers=swa if a.n_swa else (),
    )
    layers = tuple(
        LayerInfo(il, True, False, bool(a.n_expert), not a.n_expert, sliding_window=swa[il]) for il in range(a.n_layer)
    )
    return ModelSpec(a.arch, a.key, hp, layers, tuple(tensors), quant, file_bytes, source=a.source)


# --------------------------------------------------------------------------------------------
# GPUs of the calibration rows: bandwidth (GB/s), dense FP16 tensor TFLOPS (FP32 accumulate, as the
# datacenter datasheets quote it), compute capability; sources in the last column.


@dataclass(frozen=True)
class GpuFacts:
    name: str
    bandwidth_gb_s: float
    fp16_tflops: float
    int8_tops: float
    compute_capability: str
    backend: Backend
    pcie_gb_s: float
    unified: bool
    source: str


GPUS = {
    "NVIDIA GeForce RTX 3090 24GB": GpuFacts(
        "NVIDIA GeForce RTX 3090", 936, 71.0, 284.0, "8.6", Backend.CUDA12, 25.0, False,
        "gpus.csv (936 GB/s); NVIDIA GA102 whitepaper: 71 TFLOPS FP16 tensor with FP32 accumulate, 284 INT8 TOPS",
    ),
    "NVIDIA GeForce RTX 4090 24GB": GpuFacts(
        "NVIDIA GeForce RTX 4090", 1008, 165.2, 660.6, "8.9", Backend.CUDA12, 25.0, False,
        "gpus.csv (1008 GB/s); gigagpu.com RTX 4090 table (165.2 dense FP16 FP32 accumulate, 660.6 INT8)",
    ),
    "NVIDIA RTX A6000 48GB": GpuFacts(
        "NVIDIA RTX A6000", 768, 154.8, 309.7, "8.6", Backend.CUDA12, 25.0, False,
        "gpus.csv (768 GB/s, 154.8 TFLOPS); INT8 = 2 x FP16 (pro card)",
    ),
    "NVIDIA A100 SXM 80GB": GpuFacts(
        "NVIDIA A100 SXM 80GB", 2039, 312.0, 624.0, "8.0", Backend.CUDA12, 25.0, False,
        "gpus.csv (2039 GB/s, 312 TFLOPS, 624 INT8)",
    ),
    "NVIDIA H100 PCIe 80GB": GpuFacts(
        "NVIDIA H100 PCIe 80GB", 2000, 756.0, 1513.0, "9.0", Backend.CUDA12, 50.0, False,
        "gpus.csv (2000 GB/s, 756 TFLOPS, 1513 INT8)",
    ),
    "NVIDIA GB10 (DGX Spark)": GpuFacts(
        "NVIDIA GB10", 273, 125.0, 250.0, "12.1", Backend.CUDA13, 100.0, True,
        "gpus.csv (273 GB/s); 125 FP16 / 250 INT8 = NVIDIA's 1 PFLOP FP4 with sparsity / 8 and / 4, derived",
    ),
    "Apple M1 Max 32-Core GPU 64GB": GpuFacts(
        "Apple M1 Max", 400, 10.4, 0.0, "", Backend.METAL, 400.0, True, "gpus.csv (400 GB/s); Apple: 10.4 TFLOPS GPU"
    ),
    "Apple M2 Ultra 76-Core GPU 192GB": GpuFacts(
        "Apple M2 Ultra", 800, 27.2, 0.0, "", Backend.METAL, 800.0, True, "gpus.csv (800 GB/s); Apple: 27.2 TFLOPS GPU"
    ),
}  # fmt: skip


# the hardware catalog's ids of the same GPUs: its figures win, so that calibration and production agree
CATALOG_IDS = {
    "NVIDIA GeForce RTX 3090 24GB": "nvidia-rtx-3090",
    "NVIDIA GeForce RTX 4090 24GB": "nvidia-rtx-4090",
    "NVIDIA RTX A6000 48GB": "nvidia-rtx-a6000",
    "NVIDIA A100 SXM 80GB": "nvidia-a100-sxm-80gb",
    "NVIDIA H100 PCIe 80GB": "nvidia-h100-pcie",
    "NVIDIA GB10 (DGX Spark)": "nvidia-gb10",
    "Apple M1 Max 32-Core GPU 64GB": "apple-m1-max",
    "Apple M2 Ultra 76-Core GPU 192GB": "apple-m2-ultra",
}


def gpu_facts(gpu: str) -> GpuFacts:
    """The bench's table, overridden by the hardware catalog's figures where it has the GPU."""
    g = GPUS[gpu]
    try:
        from servefit.hardware import list_gpus
    except ImportError:
        return g
    for cat in list_gpus():
        if cat.id == CATALOG_IDS.get(gpu) and cat.bandwidth_gb_s and cat.fp16_tflops:
            return replace(
                g,
                bandwidth_gb_s=cat.bandwidth_gb_s,
                fp16_tflops=cat.fp16_tflops,
                int8_tops=cat.int8_tops or g.int8_tops,
                compute_capability=cat.compute_capability or g.compute_capability,
                source=f"servefit.hardware ({cat.id})",
            )
    return g


def machine_for(gpu: str, count: int) -> Machine:
    g = gpu_facts(gpu)
    dev = Device(
        name=g.name,
        gpu_id=g.name.lower().replace(" ", "-"),
        memory_bytes=80 * GIB,
        bandwidth_gb_s=g.bandwidth_gb_s,
        fp16_tflops=g.fp16_tflops,
        int8_tops=g.int8_tops,
        compute_capability=g.compute_capability,
        pcie_gb_s=g.pcie_gb_s,
    )
    return Machine(
        id=f"{count}x{dev.gpu_id}",
        name=f"{count}x {g.name}",
        devices=(dev,) * count,
        host_ram_bytes=256 * GIB,
        cpu_cores=32,
        backend=g.backend,
        unified_memory=g.unified,
    )


def bench_plan(spec: ModelSpec, machine: Machine, *, flash: bool, batch: int, ubatch: int, context: int) -> Plan:
    """The plan llama-bench ran: every layer on the GPUs, equal layer split."""
    n = spec.hparams.n_layer
    return Plan(
        model_id=spec.name, model_name=spec.name, quant=spec.ftype, target_id=machine.id, target_name=machine.name,
        gpu_class="", gguf_repo="", fits=True, strategy=Strategy.GPU, reasons=(), context=context, parallel=1,
        gpu_layers=n + 1, total_layers=n + 1, n_cpu_moe=0, tensor_split=(1.0,) * machine.gpu_count,
        flash_attention=flash, cache_type_k="f16", cache_type_v="f16", batch=batch, ubatch=ubatch,
        backend=str(machine.backend), model_bytes=spec.file_bytes, vram_total_bytes=machine.vram_bytes,
        vram_used_bytes=0, ram_total_bytes=machine.host_ram_bytes, ram_required_bytes=0, reading_from_disk=False,
        devices=(), llama_server_args=(),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# rows


@dataclass
class Row:
    gpu: str
    count: int
    model: str
    quant: str
    test: str
    kind: str  # "decode" | "prefill"
    model_kind: str  # "dense" | "moe" | "hybrid"
    measured: float
    backend: str
    family: str
    anomalous: bool
    source: str = "calibration"  # "calibration" | "supplement"
    streams: int = 1  # parallel sequences (llama-batched-bench B); tokens/s is their aggregate
    decode: speed.DecodeTerms | None = None
    prefill: speed.PrefillTerms | None = None
    predicted: float = 0.0  # leave-one-GPU-out
    in_sample: float = 0.0
    held_model: float = 0.0  # leave-one-model-out
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.count}x {self.gpu}" if self.count > 1 else self.gpu


def _size_bytes(text: str, key: str) -> int:
    if not text:
        return GPT_OSS_20B_BYTES
    value, _, unit = text.partition(" ")
    if unit not in ("GB", "GiB"):
        raise ValueError(f"unknown size unit in {text!r}")
    return int(float(value) * GIB)  # the README's "GB" are GiB, see the module docstring


def _parse_test(test: str, depth_field: str) -> tuple[str, int, int]:
    """(kind, tokens, depth) of a llama-bench / llama-batched-bench test label."""
    t = test.strip()
    depth = int(depth_field) if depth_field.strip().isdigit() else 0
    if t.startswith("S_PP"):
        return "prefill", int(t.split("PP=")[1].split(",")[0]), 0
    if t.startswith("S_TG"):
        pp = int(t.split("PP=")[1].split(",")[0])
        tg = int(t.split("TG=")[1].split(" ")[0])
        return "decode", tg, pp
    head = t.split("@")[0].strip()
    kind = "decode" if head.startswith("tg") else "prefill"
    return kind, int(head[2:]), depth


def load_rows(path: Path = DATA) -> list[Row]:
    rows: list[Row] = []
    specs: dict[tuple[str, str, int], ModelSpec] = {}
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            kind, tokens, depth = _parse_test(r["test"], r["depth_tokens"])
            size = _size_bytes(r["model_size"], r["model"])
            key = (r["model"], r["quant"], size)
            spec = specs.get(key) or specs.setdefault(key, model_spec(r["model"], r["quant"], size))
            count = int(r["gpu_count"])
            machine = machine_for(r["gpu"], count)
            ubatch = int(r["n_ubatch"]) if r["n_ubatch"].strip() else 512
            batch = int(r["n_batch"]) if r["n_batch"].strip() else max(2048, ubatch)
            flash = r["flash_attn"].strip() == "1"
            plan = bench_plan(spec, machine, flash=flash, batch=batch, ubatch=ubatch, context=depth + tokens + 256)
            row = Row(
                gpu=r["gpu"],
                count=count,
                model=r["model"],
                quant=r["quant"],
                test=r["test"],
                kind=kind,
                model_kind="moe" if spec.is_moe else "dense",
                measured=float(r["tokens_per_s"]),
                backend=speed.backend_family(machine),
                family=speed.family_of(machine),
                # rows the source's notes flag: A100 SXM F16 prompt rows "look anomalous" (slower than
                # Q4_K_M), and the short S_PP (PP=512) "includes warm-up effects"
                anomalous=(kind == "prefill" and r["quant"] == "F16" and "A100 SXM" in r["gpu"])
                or (r["test"].startswith("S_PP (PP=512,") and "warm-up" in r["notes"]),
            )
            if kind == "decode":
                # tgN from an empty cache averages over depths 0..N: the step time is linear in depth
                row.decode = speed.decode_terms(plan, spec, machine, depth=depth + tokens // 2)
            else:
                row.prefill = speed.prefill_terms(plan, spec, machine, prompt=tokens, depth=depth)
            rows.append(row)
    return rows


def all_rows() -> list[Row]:
    """Every fitted row: the calibration file and the supplement's llama-bench rows."""
    return load_rows() + load_supplement(tool="llama-bench")


def load_supplement(*, tool: str, path: Path = SUPPLEMENT) -> list[Row]:
    """More published rows of the GB10 page (other models; llama-batched-bench with B parallel sequences).

    Each model's structure comes from the model catalog (``servefit.catalog.models.model_spec``:
    config.json shapes and predicted per-tensor types), as in production. Empty when the catalog
    is not available. ``tool`` picks ``llama-bench`` rows (fitted) or ``llama-batched-bench`` rows
    (never fitted: the parallel-streams check).
    """
    try:
        from servefit.catalog.models import model_spec as catalog_spec
    except ImportError:
        return []
    rows: list[Row] = []
    specs: dict[tuple[str, str], ModelSpec] = {}
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r["tool"] != tool:
                continue
            kind, tokens, depth = _parse_test(r["test"], r["depth_tokens"])
            key = (r["catalog_id"], r["quant"])
            spec = specs.get(key) or specs.setdefault(key, catalog_spec(*key))
            machine = machine_for(r["gpu"], int(r["gpu_count"]))
            streams = int(r["parallel"])
            plan = bench_plan(
                spec,
                machine,
                flash=r["flash_attn"] == "1",
                batch=int(r["n_batch"]),
                ubatch=int(r["n_ubatch"]),
                context=depth + tokens + 256,
            )
            plan = replace(plan, parallel=streams)
            row = Row(
                gpu=r["gpu"],
                count=int(r["gpu_count"]),
                model=r["model"],
                quant=r["quant"],
                test=r["test"],
                kind=kind,
                model_kind="hybrid" if speed_hybrid(spec) else "moe" if spec.is_moe else "dense",
                measured=float(r["tokens_per_s"]),
                backend=speed.backend_family(machine),
                family=speed.family_of(machine),
                anomalous=False,
                source="supplement",
                streams=streams,
            )
            if kind == "decode":
                row.decode = speed.decode_terms(plan, spec, machine, depth=depth + tokens // 2, streams=streams)
            else:
                row.prefill = speed.prefill_terms(plan, spec, machine, prompt=tokens, depth=depth)
            rows.append(row)
    return rows


def speed_hybrid(spec: ModelSpec) -> bool:
    return any(layer.has_recurrent for layer in spec.layers)


# --------------------------------------------------------------------------------------------
# fitting: non-negative least squares on relative error (every factor multiplies a term linearly)

DECODE_FEATURES = ("weights_quant", "weights_float", "attention", "attention_fa", "layer_s", "hop_s")
# ubatch_s (a fixed cost per micro-batch) is not fitted: with few rows it soaks up the compute time
# (leave-one-model-out fits gave 0.3 s per micro-batch), and the full fit puts it at 0 anyway.
PREFILL_FEATURES = ("mm_quant", "mm_float", "attn_flops", "attn_flops_fa")


def _decode_x(t: speed.DecodeTerms) -> list[float]:
    fa = t.gpu_attn_s if t.flash_attention else 0.0
    return [t.gpu_quant_s, t.gpu_float_s, t.gpu_attn_s - fa, fa, float(t.gpu_layers), float(t.hops)]


def _prefill_x(t: speed.PrefillTerms, f: speed.Factors) -> tuple[list[float], float]:
    """Features (per prompt, pipeline and saturation applied) and the fixed part in seconds."""
    p = t.pipeline
    c = p * f.compute_scale(t.peak_tflops)
    fixed = (t.weights_s * f.weights_quant + t.ubatches * t.hops * f.hop_s) * p + t.pcie_s + t.cpu_s + t.disk_s
    fa = t.attn_s if t.flash_attention else 0.0
    fixed += t.ubatches * f.ubatch_s * p
    return [t.mm_quant_s * c, t.mm_float_s * c, (t.attn_s - fa) * c, fa * c], fixed


# candidate saturation points (TFLOPS) searched around the linear fit of the other factors
SAT_GRID = (0.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 450.0, 700.0, 1000.0, 2000.0)


def nnls(a: list[list[float]], b: list[float], ridge: Sequence[float] | None = None) -> list[float]:
    """min ||A x - b|| with x >= 0 (active set on numpy lstsq), an optional small ridge towards 0.

    A column no row informs (all zero) comes back as NaN: the caller keeps its prior value.
    """
    import numpy as np

    am = np.asarray(a, dtype=float)
    bm = np.asarray(b, dtype=float)
    n = am.shape[1]
    scale = np.maximum(np.abs(am).max(axis=0), 1e-30)
    am = am / scale
    if ridge is not None:
        am = np.vstack([am, np.diag(np.asarray(ridge, dtype=float))])
        bm = np.concatenate([bm, np.zeros(n)])
    informed = [j for j in range(n) if np.abs(np.asarray(a, dtype=float)[:, j]).max() > 0]
    active = list(informed)
    x = np.zeros(n)
    while active:
        sol, *_ = np.linalg.lstsq(am[:, active], bm, rcond=None)
        if (sol >= 0).all():
            x[:] = 0
            x[active] = sol
            break
        active.pop(int(np.argmin(sol)))
    out = [float(v) for v in x / scale]
    return [v if j in informed else math.nan for j, v in enumerate(out)]  # NaN: no row informs it


# Tried (500..10000 GB/s): it helps the HBM GPUs of the 2024 rows but moves GB10 (a 2025 build) from 4% to
# 41% decode error, so no memory saturation is fitted; the factor stays available.
BW_SAT_GRID = (0.0,)


def fit_decode(rows: Iterable[Row], base: dict[str, speed.Factors] | None = None) -> dict[str, speed.Factors]:
    """Decode factors per backend; the (small) matmul time of ``base``'s prefill factors is held fixed."""
    by_backend: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.decode is not None and r.streams == 1:
            by_backend[r.backend].append(r)
    out: dict[str, speed.Factors] = {}
    for backend, rs in by_backend.items():
        start = (base or {}).get(backend, speed.Factors())
        best: tuple[float, speed.Factors] | None = None
        for sat in BW_SAT_GRID:
            a: list[list[float]] = []
            b: list[float] = []
            for r in rs:
                assert r.decode is not None
                x = _decode_x(r.decode)
                m = 1.0 + r.decode.bandwidth_gb_s / sat if sat else 1.0
                observed = r.streams / r.measured
                fixed = r.decode.compute_s * start.mm_quant * start.compute_scale(r.decode.peak_tflops)
                a.append([v / observed * (m if i < 4 else 1.0) for i, v in enumerate(x)])
                b.append(1.0 - fixed / observed)
            theta = nnls(a, b, ridge=[0.0, 0.0, 0.0, 0.0, 0.02, 0.02])
            fitted = {k: v for k, v in zip(DECODE_FEATURES, theta, strict=True) if not math.isnan(v)}
            trial = replace(start, **fitted, sat_gb_s=sat)
            loss = sum(math.log(_predict(r, trial) / r.measured) ** 2 for r in rs)
            if best is None or loss < best[0]:
                best = (loss, trial)
        assert best is not None
        out[backend] = best[1]
    return out


def fit_prefill(
    rows: Iterable[Row], decode: dict[str, speed.Factors]
) -> tuple[dict[str, speed.Factors], dict[str, float]]:
    by_backend: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.prefill is not None and not r.anomalous:
            by_backend[r.backend].append(r)
    out: dict[str, speed.Factors] = {}
    scales: dict[str, float] = {}
    for backend, rs in by_backend.items():
        base = decode.get(backend, speed.Factors())
        best: tuple[float, speed.Factors] | None = None
        for sat in SAT_GRID:
            trial = replace(base, sat_tflops=sat)
            a: list[list[float]] = []
            b: list[float] = []
            for r in rs:
                assert r.prefill is not None
                x, fixed = _prefill_x(r.prefill, trial)
                observed = r.prefill.tokens / r.measured
                a.append([v / observed for v in x])
                b.append(1.0 - fixed / observed)
            theta = nnls(a, b)
            trial = replace(trial, **{k: v for k, v in zip(PREFILL_FEATURES, theta, strict=True) if not math.isnan(v)})
            loss = sum(math.log(_predict(r, trial) / r.measured) ** 2 for r in rs)
            if best is None or loss < best[0]:
                best = (loss, trial)
        assert best is not None
        factors = best[1]
        out[backend] = factors
        # one compute scale per architecture family, the median log-ratio of its rows
        fam_rows: dict[str, list[Row]] = defaultdict(list)
        for r in rs:
            fam_rows[r.family].append(r)
        for family, frs in fam_rows.items():
            if family == backend:
                continue
            scales[family] = _fit_scale(frs, factors)
    return out, scales


def _fit_scale(rows: list[Row], f: speed.Factors) -> float:
    def loss(s: float) -> float:
        errs = [math.log(_predict(r, f, s) / r.measured) ** 2 for r in rows]
        return sum(errs)

    lo, hi = math.log(0.2), math.log(5.0)
    for _ in range(60):  # golden-section search on log(scale)
        m1, m2 = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
        if loss(math.exp(m1)) < loss(math.exp(m2)):
            hi = m2
        else:
            lo = m1
    return math.exp((lo + hi) / 2)


def _predict(r: Row, f: speed.Factors, scale: float = 1.0) -> float:
    if r.decode is not None:
        return r.streams / r.decode.seconds(f)
    assert r.prefill is not None
    return r.prefill.tokens / r.prefill.seconds(f, scale)


def fit(rows: list[Row]) -> speed.Calibration:
    """Decode, then prefill, then decode again with the prefill matmul factors, then prefill again."""
    decode = fit_decode(rows)
    factors, scales = fit_prefill(rows, decode)
    decode = fit_decode(rows, {**decode, **factors})
    factors, scales = fit_prefill(rows, decode)
    backends = {**decode, **factors}
    return speed.Calibration(backends=backends, family_scale=scales, error={})


def predict(rows: list[Row], cal: speed.Calibration) -> list[float]:
    return [_predict(r, cal.factors(r.backend), cal.scale(r.family) if r.prefill else 1.0) for r in rows]


def check_parallel(rows: list[Row]) -> list[Row]:
    """Parallel-stream rows predicted by the fit on all rows (``in_sample``) and without their GPU (``predicted``)."""
    checks = load_supplement(tool="llama-batched-bench")
    if not checks:
        return []
    for r, p in zip(checks, predict(checks, fit(rows)), strict=True):
        r.in_sample = p
    for gpu in sorted({r.gpu for r in checks}):
        test = [r for r in checks if r.gpu == gpu]
        for r, p in zip(test, predict(test, fit([r for r in rows if r.gpu != gpu])), strict=True):
            r.predicted = p
    return checks


def leave_one_model_out(rows: list[Row]) -> None:
    """Fill ``held_model``: each row predicted by factors fitted without any row of its model."""
    for model in sorted({r.model for r in rows}):
        test = [r for r in rows if r.model == model]
        for r, p in zip(test, predict(test, fit([r for r in rows if r.model != model])), strict=True):
            r.held_model = p


def leave_one_gpu_out(rows: list[Row]) -> None:
    """Fill ``predicted`` (held out) and ``in_sample`` for every row."""
    for r, p in zip(rows, predict(rows, fit(rows)), strict=True):
        r.in_sample = p
    for gpu in sorted({r.gpu for r in rows}):
        train = [r for r in rows if r.gpu != gpu]
        test = [r for r in rows if r.gpu == gpu]
        cal = fit(train)
        for r, p in zip(test, predict(test, cal), strict=True):
            r.predicted = p


# --------------------------------------------------------------------------------------------
# report


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p90: float
    bias: float

    def cells(self) -> str:
        return f"{self.n} | {self.median:.1f}% | {self.p90:.1f}% | {self.bias:+.1f}%"


def stats(rows: Sequence[Row], pred: Callable[[Row], float]) -> Stats:
    errs = [(pred(r) - r.measured) / r.measured * 100 for r in rows]
    ape = sorted(abs(e) for e in errs)
    if not ape:
        return Stats(0, math.nan, math.nan, math.nan)
    p90 = ape[min(len(ape) - 1, math.ceil(0.9 * len(ape)) - 1)]
    return Stats(len(ape), statistics.median(ape), p90, statistics.median(errs))


def held_out(r: Row) -> float:
    return r.predicted


def in_sample(r: Row) -> float:
    return r.in_sample


def summary(rows: list[Row]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for backend in sorted({r.backend for r in rows}):
        entry: dict[str, float] = {}
        for kind in ("decode", "prefill"):
            s = stats([r for r in rows if r.backend == backend and r.kind == kind], held_out)
            entry.update({f"{kind}_median_pct": round(s.median, 1), f"{kind}_p90_pct": round(s.p90, 1)})
            entry[f"{kind}_bias_pct"] = round(s.bias, 1)
            entry[f"{kind}_rows"] = s.n
        out[backend] = entry
    return out


def held_model(r: Row) -> float:
    return r.held_model


def _table(title: str, groups: list[tuple[str, list[Row]]], note: str = "") -> list[str]:
    lines = ["", f"## {title}", ""]
    if note:
        lines += [note, ""]
    lines += [
        "| group | what | rows | median | p90 | bias | median, model held out | bias |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in groups:
        for kind in ("decode", "prefill"):
            sub = [r for r in rs if r.kind == kind]
            if not sub:
                lines.append(f"| {name} | {kind} | 0 | no data | | | | |")
                continue
            m = stats(sub, held_model)
            lines.append(f"| {name} | {kind} | {stats(sub, held_out).cells()} | {m.median:.1f}% | {m.bias:+.1f}% |")
    return lines


def _parallel_section(checks: list[Row]) -> list[str]:
    if not checks:
        return ["", "## Parallel streams", "", "Skipped: the model catalog is not available."]
    lines = [
        "",
        "## Parallel streams (never fitted)",
        "",
        f"{len(checks)} llama-batched-bench rows (aggregate decode tokens/s of B = 1..32 sequences after a",
        "512-token prompt) from the GB10 page. *GPU seen*: factors fitted on all rows; *GPU held out*: fitted",
        "without any GB10 row.",
        "",
        "| model | rows | median (GPU seen) | p90 | bias | median (GPU held out) | bias |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = [(m, [r for r in checks if r.model == m]) for m in sorted({r.model for r in checks})]
    for name, sub in [*groups, ("all", checks)]:
        seen, held = stats(sub, in_sample), stats(sub, held_out)
        lines.append(
            f"| {name} | {seen.n} | {seen.median:.1f}% | {seen.p90:.1f}% | {seen.bias:+.1f}% "
            f"| {held.median:.1f}% | {held.bias:+.1f}% |"
        )
    lines += ["", "| model | B | measured tok/s | predicted (GPU seen) | error |", "|---|---|---|---|---|"]
    for r in checks:
        err = (r.in_sample - r.measured) / r.measured * 100
        lines.append(f"| {r.model} | {r.streams} | {r.measured:.1f} | {r.in_sample:.1f} | {err:+.0f}% |")
    return lines


def render(rows: list[Row], cal: speed.Calibration, checks: list[Row] | None = None) -> str:
    n_csv = sum(1 for r in rows if r.source == "calibration")
    lines = [
        "# Speed model accuracy",
        "",
        "Generated by `python bench/speed_accuracy.py`; do not edit by hand. Data (every row names its public",
        f"source): `bench/data/llama_bench_calibration.csv` ({n_csv} llama-bench rows) and",
        f"`bench/data/llama_bench_supplement.csv` ({len(rows) - n_csv} more llama-bench rows of four other models",
        "from the GB10 page, plus the llama-batched-bench rows of the parallel-streams check).",
        "",
        "**How to read it.** Error = (predicted − measured) / measured. *Median* and *p90* are of the absolute",
        "percentage error; *bias* is the median signed error (positive: we predict faster than measured).",
        "Main figures are **leave-one-GPU-out**: the factors that predict a GPU's rows were fitted without any",
        "row of that GPU (at any GPU count). *Model held out* figures are **leave-one-model-out** (fitted",
        "without any row of that model). In-sample figures are for comparison only.",
        "",
        "Goal: median ≤ 15% for decode, ≤ 25% for prefill.",
        "",
        "## The model in one paragraph",
        "",
        "`servefit.speed` counts, per decode step, the bytes each device reads (dense weights, the routed",
        "experts in use, shared experts, the KV cache at the current depth, recurrent state) over the bandwidth",
        "of the memory holding them (GPU, host RAM, disk), plus a kernel overhead per layer and a hop per GPU",
        "boundary; with N streams the weights are read once per step (MoE: the experts the N tokens touch) and",
        "the matmul time adds. Prefill counts matmul and attention FLOPs against the GPU's tensor peak (INT8",
        "for quantized weights, which llama.cpp multiplies on INT8 tensor cores; FP16 for float weights),",
        "with a saturation (big GPUs reach a smaller share of their peak), the multi-GPU micro-batch pipeline,",
        "and the PCIe copy of host-resident weights for every micro-batch. Only the efficiency multipliers below",
        "are fitted, per backend, plus one prefill scale per GPU architecture family.",
        "",
        "## Overall",
        "",
        "| what | rows | median | p90 | bias | median, model held out | p90 | in-sample median |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("decode", "prefill"):
        for label, rs in (
            (kind, [r for r in rows if r.kind == kind]),
            (
                f"{kind}, without rows the sources flag as anomalous",
                [r for r in rows if r.kind == kind and not r.anomalous],
            ),
        ):
            if label != kind and len(rs) == sum(1 for r in rows if r.kind == kind):
                continue
            m, i = stats(rs, held_model), stats(rs, in_sample)
            lines.append(
                f"| {label} | {stats(rs, held_out).cells()} | {m.median:.1f}% | {m.p90:.1f}% | {i.median:.1f}% |"
            )
    lines += _table("By GPU", [(g, [r for r in rows if r.gpu == g]) for g in sorted({r.gpu for r in rows})])
    lines += _table(
        "By GPU and count", [(g, [r for r in rows if r.label == g]) for g in sorted({r.label for r in rows})]
    )
    lines += _table(
        "By model kind",
        [(k, [r for r in rows if r.model_kind == k]) for k in ("dense", "moe", "hybrid")],
        "Hybrid (Mamba/attention) models have no published rows here: their figures are unmeasured.",
    )
    lines += _table(
        "By model and quantization",
        [
            (m if q.split("_")[0] in m else f"{m} {q}", [r for r in rows if (r.model, r.quant) == (m, q)])
            for m, q in sorted({(r.model, r.quant) for r in rows})
        ],
    )
    lines += _parallel_section(checks or [])
    fields = list(speed.Factors.__dataclass_fields__)
    lines += [
        "",
        "## Fitted factors (all rows)",
        "",
        "Multipliers on ideal times (1 / efficiency) and fixed costs in seconds; see `servefit.speed.Factors`.",
        "",
        "| factor | " + " | ".join(sorted(cal.backends)) + " |",
        "|---|" + "---|" * len(cal.backends),
    ]
    for name in fields:
        lines.append(
            f"| {name} | " + " | ".join(f"{getattr(cal.backends[b], name):.3g}" for b in sorted(cal.backends)) + " |"
        )
    lines += ["", "Prefill compute scale per GPU architecture family (1 = the backend's factors):", ""]
    for family, sc in sorted(cal.family_scale.items()):
        lines.append(f"- {family}: {sc:.3f}")
    lines += [
        "",
        "## What this does and does not cover",
        "",
        "- Rows: Llama 3 8B and 70B (F16, Q4_K_M) on 1-8 NVIDIA GPUs and two Apple GPUs from a May 2024",
        "  llama.cpp build (flash attention off, the default then); gpt-oss 20B and 120B, Qwen3-Coder 30B-A3B,",
        "  Qwen2.5-Coder 7B and Gemma 3 4B on one DGX Spark (GB10) from a 2025 build (flash attention on,",
        "  depths up to 32k). Decode rows are `tgN` (average over depths 0..N) and `tg32 @ dD`; prefill rows",
        "  `ppN` and `pp2048 @ dD`.",
        "- The per-layer kernel overhead fitted on GB10 alone (2025 build) is 131 µs against 160 µs on the",
        "  2024 rows: the overhead is a property of llama.cpp's per-layer graph, not only of the old build.",
        "- Flash-attention factors rest on GB10 rows only, so a GPU-held-out GB10 row is predicted with the",
        "  non-flash-attention factors of the 2024 build: that is the largest held-out error above.",
        "- **No rows** for hybrid (Mamba/attention) models, for experts or layers kept in host RAM, for",
        "  CPU-only runs, for AMD or Vulkan, nor for L4/L40S/A10G/H200/B200. Those paths use the physics with",
        "  the CUDA factors (GPU) or stated constants (host RAM and PCIe efficiency, per-core rates in",
        "  `servefit.speed`); their error is unknown and not included above.",
        "- Model structure: Llama 3 rows use real shapes with the published size spread uniformly over the",
        "  weight matrices (see the bench's docstring); GB10 page rows use the model catalog's specs.",
        "- GPU figures (bandwidth, dense FP16 TFLOPS) come from `servefit.hardware` where it lists the GPU,",
        "  else from the bench's `GPUS` table with sources; GB10's FP16 figure is derived from NVIDIA's FP4",
        "  headline and is the least certain.",
        "",
        "## Per-row detail (leave-one-GPU-out)",
        "",
        "| GPU | model | quant | test | measured tok/s | predicted | error | model held out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        err = (r.predicted - r.measured) / r.measured * 100
        err_m = (r.held_model - r.measured) / r.measured * 100
        flag = " (flagged anomalous)" if r.anomalous else ""
        cells = [r.label, r.model, r.quant, r.test + flag, f"{r.measured:.1f}", f"{r.predicted:.1f}"]
        lines.append("| " + " | ".join(cells) + f" | {err:+.0f}% | {err_m:+.0f}% |")
    return "\n".join(lines) + "\n"


def calibration_yaml(cal: speed.Calibration, rows: list[Row]) -> str:
    import yaml

    data = {
        "source": "bench/speed_accuracy.py on bench/data/llama_bench_calibration.csv "
        f"({len(rows)} published llama-bench rows); see docs/speed-accuracy.md",
        "backends": {
            b: {n: float(f"{getattr(f, n):.6g}") for n in speed.Factors.__dataclass_fields__}
            for b, f in sorted(cal.backends.items())
        },
        "family_scale": {k: round(v, 4) for k, v in sorted(cal.family_scale.items())},
        "error": summary(rows),
    }
    header = "# Written by bench/speed_accuracy.py --write; do not edit by hand. Errors are leave-one-GPU-out.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="also write the shipped calibration YAML")
    args = parser.parse_args(argv)
    rows = all_rows()
    leave_one_gpu_out(rows)
    leave_one_model_out(rows)
    cal = fit(rows)
    checks = check_parallel(rows)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(rows, cal, checks))
    if args.write:
        CALIBRATION.write_text(calibration_yaml(cal, rows))
    for kind in ("decode", "prefill"):
        s = stats([r for r in rows if r.kind == kind], held_out)
        print(f"{kind}: rows {s.n}, median {s.median:.1f}%, p90 {s.p90:.1f}%, bias {s.bias:+.1f}% (leave-one-GPU-out)")
    print(f"wrote {DOC.relative_to(ROOT)}" + (f" and {CALIBRATION.relative_to(ROOT)}" if args.write else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
