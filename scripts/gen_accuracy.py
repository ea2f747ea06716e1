"""Write docs/accuracy.md: servefit's byte model against llama.cpp's own buffer sizes.

Part 1 loads every case of ``tests/llamacpp_log.CASES`` in llama.cpp (llama-cpp-python 0.3.36, CPU)
and tabulates, buffer by buffer, our estimate, what llama.cpp logged, and the error. Part 2 compares
the GPU (CUDA) model with published llama.cpp logs. Run ``python scripts/gen_accuracy.py``
(needs the llama_cpp binding; about two minutes); ``--check`` exits 1 when docs/accuracy.md differs
from what it would write.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from llamacpp_log import CASES, LOG_ROUNDING_BYTES, CaseResult, run_case  # noqa: E402
from servefit.inventory import spec_from_config  # noqa: E402
from servefit.memory import (  # noqa: E402
    CUDA_OVERHEAD_BYTES,
    Context,
    Layout,
    memory_breakdown,
)
from servefit.model import Hparams, ModelSpec  # noqa: E402

MIB = 1024 * 1024
OUT = ROOT / "docs" / "accuracy.md"

LLAMA31_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}


def _mib(n: int) -> str:
    return f"{n / MIB:,.2f}"


def _cpu_table(results: list[CaseResult]) -> tuple[list[str], dict[str, int]]:
    lines = [
        "| case | buffer | estimate (MiB) | llama.cpp (MiB) | error |",
        "|---|---|---:|---:|---:|",
    ]
    stats = {"exact": 0, "exact_total": 0, "compute_exact": 0, "compute2": 0, "compute5": 0, "compute_total": 0}
    worst = 0.0
    for r in results:
        if r.error:
            lines.append(f"| {r.case.label} | load failed | | | {r.error[:80]} |")
            continue
        for name, predicted, logged in r.rows:
            if name == "compute":
                err = (predicted - logged) / logged * 100 if logged else 0.0
                worst = max(worst, abs(err))
                stats["compute_total"] += 1
                stats["compute_exact"] += abs(predicted - logged) <= LOG_ROUNDING_BYTES
                stats["compute2"] += abs(err) <= 2.0
                stats["compute5"] += abs(err) <= 5.0
                err_s = f"{err:+.1f}%"
            else:
                diff = predicted - logged
                stats["exact_total"] += 1
                stats["exact"] += abs(diff) <= LOG_ROUNDING_BYTES
                err_s = "exact" if abs(diff) <= LOG_ROUNDING_BYTES else f"{diff / MIB:+.3f} MiB"
            lines.append(f"| {r.case.label} | {name} | {_mib(predicted)} | {_mib(logged)} | {err_s} |")
    stats["worst_compute_pct_x10"] = round(worst * 10)
    return lines, stats


def _bare_spec(arch: str, n_layer: int, n_embd: int, n_head: int, n_head_kv: int, n_ff: int, n_vocab: int) -> ModelSpec:
    """A spec with hyperparameters only (no tensors): enough for KV and compute buffers."""
    hp = Hparams(
        n_layer=n_layer,
        n_embd=n_embd,
        n_vocab=n_vocab,
        n_ctx_train=8192,
        n_head=(n_head,) * n_layer,
        n_head_kv=(n_head_kv,) * n_layer,
        n_embd_head_k=n_embd // n_head,
        n_embd_head_v=n_embd // n_head,
        n_ff=(n_ff,) * n_layer,
    )
    return ModelSpec(architecture=arch, name=arch, hparams=hp, layers=(), tensors=(), ftype="unknown", file_bytes=0)


@dataclass
class Published:
    what: str
    source: str
    estimate: int
    logged_mib: float


def _published() -> list[Published]:
    out: list[Published] = []
    llama = spec_from_config(LLAMA31_8B, "Q4_K_M")
    full = Layout(n_gpu=1, gpu_layers=33)
    # 1. ollama (llama.cpp) load log, Llama 3.1 8B Instruct Q4_K_M, 33/33 layers, n_ctx 8192 over 4
    #    sequences in one unified cache, ubatch 512, flash attention off
    src1 = "ollama/llama.cpp load log of Llama 3.1 8B Instruct Q4_K_M (public GitHub file; n_ctx 8192, 4 seqs, FA off)"
    b = memory_breakdown(llama, Context(8192, n_seq=4, kv_unified=True, flash_attn=False), full)
    out += [
        Published("CUDA0 model buffer", src1, b.gpu_weights[0], 4403.49),
        Published("CPU_Mapped model buffer", src1, b.host_weights, 281.81),
        Published("CUDA0 KV buffer", src1, b.gpu_kv[0], 1024.00),
        Published("CUDA0 compute buffer", src1, b.gpu_compute[0], 560.00),
        Published("CUDA_Host compute buffer", src1, b.host_compute, 24.01),
    ]
    # 2. llama-cpp-python log, Llama 3 8B Q4_K_M (mradermacher), n_ctx 512, FA off
    src2 = "llama-cpp-python load log of Llama 3 8B Q4_K_M (public GitHub file; n_ctx 512, FA off)"
    b = memory_breakdown(llama, Context(512, n_batch=512, flash_attn=False), full)
    out += [
        Published("CUDA0 KV buffer", src2, b.gpu_kv[0], 64.00),
        Published("CUDA0 compute buffer", src2, b.gpu_compute[0], 258.50),
        Published("CUDA_Host compute buffer", src2, b.host_compute, 9.01),
    ]
    # 3. ggml-org/llama.cpp#6122: Command-R 35B on RTX 4070 Ti + RTX 3090 Ti, 12 + 28 layers,
    #    n_ctx 4096, FA off, "pipeline parallelism enabled (n_copies=4)"
    src3 = "ggml-org/llama.cpp PR #6122 (Command-R 35B, 2 GPUs, pipeline parallel, n_ctx 4096)"
    cmdr = _bare_spec("command-r", 40, 8192, 64, 64, 22528, 256000)
    layout = Layout(n_gpu=2, gpu_layers=41, tensor_split=(12.0, 29.0))
    b = memory_breakdown(cmdr, Context(4096, flash_attn=False), layout)
    out += [
        Published("CUDA0 KV buffer", src3, b.gpu_kv[0], 1536.00),
        Published("CUDA1 KV buffer", src3, b.gpu_kv[1], 3584.00),
        Published("CUDA0 compute buffer (pipeline parallel)", src3, b.gpu_compute[0], 672.01),
    ]
    return out


GPU_SECTION = """
## GPU (CUDA) buffers

GPU buffers cannot be measured on this machine; the model below is derived from llama.cpp's source
and checked against published llama.cpp logs.

**Weights.** Exactly as on the host, with CUDA's allocation rules
(`ggml_backend_cuda_buffer_type_get_alloc_size`): quantized tensors whose rows are not a multiple
of 512 values get one padded row (`MATRIX_ROW_PADDING`), and every tensor is aligned to 128 bytes.
Layers go to GPUs from the last one backwards (`-ngl` counts the output layer as layer `n_layer`);
with several GPUs a layer goes to the first GPU whose cumulative `-ts` share exceeds
`(il - i_gpu_start) / ngl` (servefit writes `-ts` as layer counts, so the split is exact).

**KV cache and recurrent state** sit on the device of their layer (`offload_kqv`), with the same
byte formulas as on the host.

**Compute buffer** per GPU, in F32 values per token of the ubatch (`n_ub`), times `4 * n_ub` bytes:

* a GPU holding layers: the largest inner stage, as on the CPU (attention without flash attention:
  `n_kv * n_head + 3 n_embd + 2 n_q + 2 n_embd_kv`; with flash attention `3 n_embd + 2 n_q`; dense
  FFN `4 n_ff`; MoE `n_embd + 3 n_expert_used n_ff_exp + 2 n_q`; Mamba-2
  `2 d_in_proj + conv_channels + 3 n_embd`); with flash attention and a quantized K/V cache, plus an
  F16 copy of one layer's K and V (`n_kv * (n_embd_k + n_embd_v) * 2` bytes), which CUDA's kernel
  converts (measured by unslothai/unsloth#6718);
* the GPU holding the output layer: at least `n_vocab + n_embd` (the logits);
* pipeline parallelism (several GPUs, full offload, no `--n-cpu-moe`/`-ot`, a backend with async
  compute and events): `+ 3 n_embd`, the three extra copies of each split's input
  (`GGML_SCHED_MAX_COPIES = 4`); on the host, three extra copies of the KQ masks (graph inputs).

The host's `CUDA_Host` compute buffer holds the KQ masks (`n_kv * n_ub`, 2 bytes with flash
attention, 4 without) and the token-embedding gather (`n_embd * n_ub * 4`), plus the stages of
any layers left on the CPU.

**Runtime overhead.** Each CUDA (or ROCm) device also carries the runtime's own memory (context,
kernels, cuBLAS workspace), which no llama.cpp log shows: servefit counts {overhead} MiB per GPU, the
minimum ollama reserves per CUDA and ROCm GPU (`cudaMinimumMemory = rocmMinimumMemory = 457 MiB` in
ollama's `discover/gpu.go`). On top of it the planner keeps llama.cpp's `--fit` margin of 1024 MiB
free per GPU (`fit_params_target` in `common/common.h`).

### Against published logs

| buffer | log | servefit (MiB) | published (MiB) | error |
|---|---|---:|---:|---:|
"""


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="servefit-accuracy-") as tmp:
        results = [run_case(case, Path(tmp)) for case in CASES]
    table, stats = _cpu_table(results)
    lines = [
        "# Accuracy of the memory model",
        "",
        "Generated by `scripts/gen_accuracy.py` (do not edit by hand). llama.cpp of reference: the one",
        "vendored by llama-cpp-python 0.3.36, built from source for the CPU (x86-64 with AVX2).",
        "",
        "## Host buffers against llama.cpp itself",
        "",
        "Each case writes a synthetic model with the real tensor structure of its architecture",
        "(`tests/synth.py`, 32,768-token vocabulary), quantizes it with llama.cpp's own quantizer",
        "(`llama_model_quantize`), loads it with llama.cpp at the case's settings and reads the buffer",
        "sizes llama.cpp logs (`tests/llamacpp_log.py`). The estimate is `servefit.memory` for the same",
        "file (its header read by `servefit.gguf`). llama.cpp prints sizes to 0.01 MiB, so *exact* means",
        "within 0.005 MiB. Case labels: architecture, file type (`source` = unquantized F16, or MXFP4",
        "experts for gpt-oss), context (`c`), ubatch (`ub`), parallel slots (`np`), flash attention",
        "(`fa`/`nofa`), KV types, and `nommap` for `--no-mmap`.",
        "",
        f"* weights, KV cache, recurrent state, output buffer: {stats['exact']} of {stats['exact_total']} exact;",
        f"* compute buffers: {stats['compute_exact']} of {stats['compute_total']} exact, "
        f"{stats['compute2']} within 2% (largest error {stats['worst_compute_pct_x10'] / 10:.1f}%).",
        "",
        "The compute buffer is sized by ggml's allocator (`ggml-alloc.c`) on the graphs `sched_reserve`",
        "builds: one ubatch of `n_ubatch` tokens, every token an output, against the whole KV cache, then",
        "one token per sequence; the buffer keeps the larger peak. For the architectures of these cases",
        "servefit rebuilds those graphs tensor by tensor (`servefit.ggml_graph`: llama.cpp's node order,",
        "views, in-place ops, graph inputs and outputs; checked node by node, op and size, against the",
        "graph llama.cpp logs with `GGML_SCHED_DEBUG=2` in `tests/integration/test_ggml_graph_vs_llamacpp.py`)",
        "and replays the allocator on them (`servefit.ggml_alloc`: graph inputs first, then each node in",
        "the best-fitting free block below the end of the buffer or at the end, in-place reuse of a",
        "parent, frees after the last consumer, merging of adjacent free blocks, 32-byte alignment).",
        "The logits (`n_vocab x n_ubatch` F32) set the peak in most cases; in the last five the attention",
        "scores (`n_kv x n_ubatch x n_head` F32, without flash attention) do. Architectures without a",
        "rebuilt graph, and GPU machines, keep the estimate `max(masks + largest inner stage, output",
        "stage)` of `servefit.memory._compute`. The integration test requires every compute buffer here",
        "within 2% (and every other buffer exact).",
        "",
        *table,
        GPU_SECTION.format(overhead=CUDA_OVERHEAD_BYTES // MIB).rstrip("\n"),
    ]
    for p in _published():
        err = (p.estimate / MIB - p.logged_mib) / p.logged_mib * 100
        lines.append(f"| {p.what} | {p.source} | {_mib(p.estimate)} | {p.logged_mib:,.2f} | {err:+.1f}% |")
    lines += [
        "",
        "The two Llama logs come from older llama.cpp builds whose output buffer also reserved",
        "embeddings; the weights, KV and compute buffers are computed the same way today.",
        "",
    ]
    text = "\n".join(lines)
    if check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run python scripts/gen_accuracy.py")
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(results)} cases, {time.time() - started:.0f} s)")
    print(
        f"exact: {stats['exact']}/{stats['exact_total']}; compute within 2%: "
        f"{stats['compute2']}/{stats['compute_total']}, exact: {stats['compute_exact']}/{stats['compute_total']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
