"""Load a GGUF with llama.cpp (the llama_cpp binding) and read back every buffer size it logs.

llama.cpp prints one line per buffer when it loads a model and creates a context::

    load_tensors:   CPU_Mapped model buffer size =    52.34 MiB
    llama_kv_cache:        CPU KV buffer size =    16.00 MiB
    llama_memory_recurrent:        CPU RS buffer size =     0.27 MiB
    llama_context:        CPU  output buffer size =     0.00 MiB
    sched_reserve:        CPU compute buffer size =    10.01 MiB

``measure(path, ...)`` runs the load in a child process (a llama.cpp abort cannot take the test
run down, and memory is returned when it exits), captures the log through ``llama_log_set`` and
returns the sizes in bytes, summed per buffer name, as ``Measured``. Sizes are exact to the log's
0.01 MiB rounding. ``quantize(src, dst, ftype)`` runs llama.cpp's own quantizer.

Run ``python tests/llamacpp_log.py MODEL.gguf --ctx 4096`` to print the parsed sizes as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CASES",
    "LOG_ROUNDING_BYTES",
    "Case",
    "CaseResult",
    "Measured",
    "llama_available",
    "measure",
    "parse_log",
    "quantize",
    "run_case",
]

MIB = 1024 * 1024
LOG_ROUNDING_BYTES = int(0.005 * MIB) + 1  # "%8.2f MiB": half of the last printed digit

_LINE_RE = re.compile(
    r"^(?P<func>\w+):\s+(?P<buf>\S+)\s+(?P<kind>model|KV|RS|output|compute) buffer size\s*=\s*(?P<mib>[0-9.]+) MiB"
)
_CTX_RE = re.compile(r"^llama_context: n_ctx\s+=\s+(\d+)")
_CTX_SEQ_RE = re.compile(r"^llama_context: n_ctx_seq\s+=\s+(\d+)")


@dataclass
class Measured:
    """Buffer sizes llama.cpp logged, bytes per buffer name (``CPU_Mapped``, ``CPU_REPACK``, ``CPU``...)."""

    model: dict[str, int] = field(default_factory=dict)
    kv: dict[str, int] = field(default_factory=dict)
    recurrent: dict[str, int] = field(default_factory=dict)
    output: dict[str, int] = field(default_factory=dict)
    compute: dict[str, int] = field(default_factory=dict)
    n_ctx: int = 0
    n_ctx_seq: int = 0
    error: str = ""
    log: str = ""

    @property
    def kv_bytes(self) -> int:
        return sum(self.kv.values())

    @property
    def recurrent_bytes(self) -> int:
        return sum(self.recurrent.values())

    @property
    def compute_bytes(self) -> int:
        return sum(self.compute.values())

    @property
    def output_bytes(self) -> int:
        return sum(self.output.values())


_KIND_FIELD = {"model": "model", "KV": "kv", "RS": "recurrent", "output": "output", "compute": "compute"}


def parse_log(lines: Iterable[str]) -> Measured:
    """Parse llama.cpp's log lines into per-buffer byte sizes (summed when a buffer appears twice)."""
    out = Measured()
    kept: list[str] = []
    for raw in lines:
        line = raw.strip()
        m = _LINE_RE.match(line)
        if m:
            kept.append(line)
            target: dict[str, int] = getattr(out, _KIND_FIELD[m["kind"]])
            target[m["buf"]] = target.get(m["buf"], 0) + round(float(m["mib"]) * MIB)
            continue
        if c := _CTX_RE.match(line):
            out.n_ctx = int(c.group(1))
        elif c := _CTX_SEQ_RE.match(line):
            out.n_ctx_seq = int(c.group(1))
    out.log = "\n".join(kept)
    return out


def llama_available() -> bool:
    """True when the llama_cpp binding imports."""
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # the binding raises OSError/RuntimeError when its shared library is broken
        return False
    return True


def measure(
    path: str | os.PathLike[str],
    *,
    n_ctx: int = 4096,
    n_seq: int = 1,
    n_batch: int = 2048,
    n_ubatch: int = 512,
    type_k: str = "f16",
    type_v: str = "f16",
    flash_attn: bool = True,
    mmap: bool = True,
    kv_unified: bool = False,
    timeout_s: float = 120.0,
) -> Measured:
    """Load ``path`` in llama.cpp (CPU) with these context settings and return the logged buffer sizes."""
    args = [
        sys.executable,
        str(Path(__file__).resolve()),
        str(path),
        "--ctx",
        str(n_ctx),
        "--parallel",
        str(n_seq),
        "--batch",
        str(n_batch),
        "--ubatch",
        str(n_ubatch),
        "--type-k",
        type_k,
        "--type-v",
        type_v,
        "--flash-attn",
        "on" if flash_attn else "off",
    ]
    if not mmap:
        args.append("--no-mmap")
    if kv_unified:
        args.append("--kv-unified")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return Measured(error=f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    data = json.loads(proc.stdout)
    return Measured(**data)


def quantize(src: str | os.PathLike[str], dst: str | os.PathLike[str], ftype: str, *, timeout_s: float = 300.0) -> Path:
    """Quantize ``src`` to ``dst`` with llama.cpp's quantizer (``llama_model_quantize``), e.g. ftype "Q4_K_M"."""
    code = (
        "import sys, llama_cpp\n"
        "cb = llama_cpp.llama_log_callback(lambda l, t, u: None)\n"
        "llama_cpp.llama_log_set(cb, None)\n"
        "p = llama_cpp.llama_model_quantize_default_params()\n"
        "p.ftype = getattr(llama_cpp, 'LLAMA_FTYPE_MOSTLY_' + sys.argv[3])\n"
        "p.nthread = 2\n"
        "rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(src), str(dst), ftype.upper()],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"llama_model_quantize {src} -> {ftype} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return Path(dst)


# ----------------------------------------------------------------------------------------------
# the cases of the accuracy proof (tests/integration/test_memory_vs_llamacpp.py, scripts/gen_accuracy.py)
# ----------------------------------------------------------------------------------------------

SYNTH_VOCAB = 32768  # a realistic vocabulary, so that the logits weigh in the compute buffer as in real models


@dataclass(frozen=True)
class Case:
    """One llama.cpp load: a synthetic model, a quantization (None: the F32/F16/MXFP4 source) and context settings."""

    arch: str
    quant: str | None
    n_ctx: int = 4096
    n_seq: int = 1
    n_ubatch: int = 512
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = True
    mmap: bool = True

    @property
    def label(self) -> str:
        parts = [self.arch, self.quant or "source", f"c{self.n_ctx}", f"ub{self.n_ubatch}"]
        if self.n_seq > 1:
            parts.append(f"np{self.n_seq}")
        parts.append("fa" if self.flash_attn else "nofa")
        if (self.type_k, self.type_v) != ("f16", "f16"):
            parts.append(f"k{self.type_k}-v{self.type_v}")
        if not self.mmap:
            parts.append("nommap")
        return "-".join(parts)


CASES: tuple[Case, ...] = (
    Case("llama", None),
    Case("llama", "Q4_K_M", n_ctx=8192, flash_attn=False),
    Case("llama", "Q4_0", n_ctx=4096, n_ubatch=256),
    Case("llama", "Q8_0", n_ctx=8192, n_seq=4, type_k="q8_0", type_v="q8_0"),
    Case("llama", "Q4_K_M", n_ctx=6000, mmap=False),
    Case("qwen3moe", "Q4_K_M"),
    Case("qwen3moe", "Q8_0", n_ctx=8192, flash_attn=False, n_seq=2),
    Case("gemma3", "Q8_0", n_ctx=8192),
    Case("gemma3", "Q4_K_M", n_ctx=4096, n_seq=2, flash_attn=False),
    Case("gpt-oss", None),
    Case("gpt-oss", None, n_ctx=8192, n_ubatch=1024, flash_attn=False),
    Case("nemotron_h_moe", "Q4_K_M"),
    Case("nemotron_h_moe", "Q8_0", n_ctx=8192, n_seq=3, flash_attn=False),
    Case("mamba2", "Q8_0"),
    Case("mamba2", "Q4_0", n_seq=4, mmap=False),
    Case("granitehybrid", "Q4_K_M", n_ctx=8192, type_k="q8_0", type_v="q8_0"),
    Case("qwen2", "Q4_K_M"),
    Case("qwen2", "Q8_0", n_ctx=8192, n_seq=2, n_ubatch=1024, flash_attn=False),
    Case("qwen3", "Q4_K_M", n_ctx=8192, type_k="q8_0", type_v="q8_0"),
    Case("qwen3", "Q6_K", n_ctx=4096, n_ubatch=256, flash_attn=False),
    Case("mistral3", "Q4_K_M", n_ctx=8192),
    Case("mistral3", "Q8_0", n_seq=3, flash_attn=False),
    Case("phi3", "Q4_K_M"),
    Case("phi3", "Q5_K_M", n_ctx=8192, n_ubatch=1024, flash_attn=False),
    Case("glm4moe", "Q4_K_M", n_ctx=8192),
    Case("glm4moe", "Q8_0", n_seq=2, n_ubatch=1024, flash_attn=False),
    Case("deepseek2", "Q4_K_M"),
    Case("deepseek2", "Q8_0", n_ctx=8192, n_seq=2, flash_attn=False),
    Case("qwen3next", "Q4_K_M", n_ctx=8192),
    Case("qwen3next", "Q8_0", n_seq=2, n_ubatch=1024, flash_attn=False),
    # large ubatches against long contexts without flash attention: the attention scores
    # (n_kv x n_ubatch x n_head F32), not the logits, set the compute buffer
    Case("llama", "Q4_K_M", n_ctx=16384, n_ubatch=2048, flash_attn=False),
    Case("qwen3moe", "Q4_K_M", n_ctx=8192, n_ubatch=2048, n_seq=2, flash_attn=False),
    Case("gemma3", "Q8_0", n_ctx=16384, n_ubatch=1024, flash_attn=False),
    Case("nemotron_h_moe", "Q4_K_M", n_ctx=16384, n_ubatch=1024, flash_attn=False),
    Case("deepseek2", "Q4_K_M", n_ctx=16384, n_ubatch=1024, flash_attn=False),
    # a context below the ubatch: llama.cpp caps the batch by the context asked for (1000), not by
    # its padded size (1024)
    Case("gemma3", "Q8_0", n_ctx=1000, n_ubatch=1024, flash_attn=False),
)


@dataclass
class CaseResult:
    """Predicted and logged bytes for one case, per buffer kind."""

    case: Case
    rows: list[tuple[str, int, int]]  # (buffer, predicted, logged)
    error: str = ""


def _model_file(case: Case, root: Path) -> Path:
    import synth

    src = root / f"{case.arch}.gguf"
    if not src.exists():
        # F16 matrices as converted checkpoints have them (gpt-oss: MXFP4 experts, as published)
        dtype = None if case.arch == "gpt-oss" else synth.F16
        synth.make_model(src, case.arch, n_vocab=SYNTH_VOCAB, dtype=dtype)
    if case.quant is None:
        return src
    dst = root / f"{case.arch}-{case.quant}.gguf"
    if not dst.exists():
        quantize(src, dst, case.quant)
    return dst


def run_case(case: Case, root: Path) -> CaseResult:
    """Build (or reuse) the case's model under ``root``, load it in llama.cpp and predict the same buffers."""
    from servefit.gguf import read_model_spec
    from servefit.memory import Context, Layout, mapped_weights_bytes, memory_breakdown

    path = _model_file(case, root)
    measured = measure(
        path,
        n_ctx=case.n_ctx,
        n_seq=case.n_seq,
        n_ubatch=case.n_ubatch,
        type_k=case.type_k,
        type_v=case.type_v,
        flash_attn=case.flash_attn,
        mmap=case.mmap,
    )
    if measured.error:
        return CaseResult(case, [], measured.error)
    spec = read_model_spec(str(path))
    ctx = Context(
        case.n_ctx,
        n_seq=case.n_seq,
        n_ubatch=case.n_ubatch,
        type_k=case.type_k,
        type_v=case.type_v,
        flash_attn=case.flash_attn,
    )
    layout = Layout(n_gpu=0, mmap=case.mmap)
    b = memory_breakdown(spec, ctx, layout)
    rows: list[tuple[str, int, int]] = []
    if case.mmap:
        rows.append(("weights CPU_Mapped", mapped_weights_bytes(spec, layout), measured.model.get("CPU_Mapped", 0)))
    else:
        rows.append(("weights CPU", b.host_weights - b.host_weights_repack, measured.model.get("CPU", 0)))
    if b.host_weights_repack or "CPU_REPACK" in measured.model:
        rows.append(("weights CPU_REPACK", b.host_weights_repack, measured.model.get("CPU_REPACK", 0)))
    if b.host_kv or measured.kv:
        rows.append(("KV cache", b.host_kv, measured.kv_bytes))
    if b.host_recurrent or measured.recurrent:
        rows.append(("recurrent state", b.host_recurrent, measured.recurrent_bytes))
    rows.append(("output", b.host_output, measured.output_bytes))
    rows.append(("compute", b.host_compute, measured.compute_bytes))
    return CaseResult(case, rows)


# ----------------------------------------------------------------------------------------------
# child process
# ----------------------------------------------------------------------------------------------


def _child(ns: argparse.Namespace) -> dict[str, Any]:
    import ctypes

    import llama_cpp

    lines: list[str] = []
    pending: list[str] = []

    def on_log(level: int, text: bytes, user: ctypes.c_void_p) -> None:
        pending.append(text.decode("utf-8", "replace"))
        joined = "".join(pending)
        if "\n" in joined:
            *complete, rest = joined.split("\n")
            lines.extend(complete)
            pending[:] = [rest] if rest else []

    callback = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()

    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.load_mode = 1 if ns.mmap else 0  # LLAMA_LOAD_MODE_MMAP / LLAMA_LOAD_MODE_NONE
    model = llama_cpp.llama_model_load_from_file(ns.path.encode(), mparams)
    if not model:
        raise SystemExit("model failed to load:\n" + "\n".join(lines[-20:]))
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = ns.ctx
    cparams.n_seq_max = ns.parallel
    cparams.n_batch = ns.batch
    cparams.n_ubatch = ns.ubatch
    cparams.n_threads = 1
    cparams.n_threads_batch = 1
    cparams.flash_attn_type = 1 if ns.flash_attn == "on" else 0
    cparams.type_k = getattr(llama_cpp, f"GGML_TYPE_{ns.type_k.upper()}")
    cparams.type_v = getattr(llama_cpp, f"GGML_TYPE_{ns.type_v.upper()}")
    cparams.kv_unified = ns.kv_unified
    cparams.swa_full = False  # llama-server's default (the C API defaults to a full-size SWA cache)
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit("context failed to initialise:\n" + "\n".join(lines[-20:]))
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    measured = parse_log(lines)
    data = asdict(measured)
    return data


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--ubatch", type=int, default=512)
    parser.add_argument("--type-k", default="f16")
    parser.add_argument("--type-v", default="f16")
    parser.add_argument("--flash-attn", choices=("on", "off"), default="on")
    parser.add_argument("--no-mmap", dest="mmap", action="store_false")
    parser.add_argument("--kv-unified", action="store_true")
    ns = parser.parse_args(argv)
    print(json.dumps(_child(ns)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
