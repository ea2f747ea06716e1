"""servefit's rebuilt compute graphs against the graph llama.cpp itself schedules, node by node.

With ``GGML_SCHED_DEBUG=2`` ggml's scheduler logs every node of the graph it reserves that is not a
view (``node #  12 (  SET_ROWS):  cache_k_l0 (view) (   1M) [...]``: op, name, size). For one
case per architecture and attention kind the test loads the synthetic model in llama.cpp, takes
the last graph ``sched_reserve`` logs (the prompt graph) and compares its op and size sequence with
``servefit.ggml_graph.build_graph`` for the same file and settings. The unquantized source file
stands in for the case's quantization: weight types never enter the graph's shapes (matrix
products and row gathers come out F32), and tests/integration/test_memory_vs_llamacpp.py loads
the quantized files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from llamacpp_log import CASES, Case, _model_file

pytestmark = pytest.mark.llama

pytest.importorskip("llama_cpp")

# ggml_op_desc prints the unary or GLU function instead of GGML_OP_UNARY / GGML_OP_GLU
_UNARY = {"ABS", "SGN", "NEG", "STEP", "TANH", "ELU", "RELU", "SIGMOID", "GELU", "GELU_QUICK", "SILU", "HARDSWISH"}
_UNARY |= {"HARDSIGMOID", "EXP", "GELU_ERF", "XIELU", "FLOOR", "CEIL", "ROUND", "TRUNC", "SOFTPLUS", "EXPM1"}
_GLU = {"REGLU", "GEGLU", "SWIGLU", "SWIGLU_OAI", "GEGLU_ERF", "GEGLU_QUICK"}
_VIEW_OPS = {"VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"}  # ggml_is_view_op: not logged
_NODE_RE = re.compile(r"^node #\s*\d+ \(\s*(?P<op>[^)]*?)\):\s+.*? \(\s*(?P<size>\d+[KM])\) \[")

_CHILD = """
import ctypes, sys, llama_cpp
out = sys.stdout
cb = llama_cpp.llama_log_callback(lambda level, text, user: out.write(text.decode("utf-8", "replace")))
llama_cpp.llama_log_set(cb, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()
mp = llama_cpp.llama_model_default_params()
mp.n_gpu_layers = 0
model = llama_cpp.llama_model_load_from_file(sys.argv[1].encode(), mp)
cp = llama_cpp.llama_context_default_params()
cp.n_ctx, cp.n_seq_max, cp.n_ubatch = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cp.n_threads = cp.n_threads_batch = 1
cp.flash_attn_type = int(sys.argv[5])
cp.type_k = getattr(llama_cpp, "GGML_TYPE_" + sys.argv[6].upper())
cp.type_v = getattr(llama_cpp, "GGML_TYPE_" + sys.argv[7].upper())
cp.swa_full = False
ctx = llama_cpp.llama_init_from_model(model, cp)
llama_cpp.llama_free(ctx)
llama_cpp.llama_model_free(model)
"""


def _one_per_kind() -> list[Case]:
    seen: set[tuple[str, bool]] = set()
    picked = []
    for c in CASES:
        if (c.arch, c.flash_attn) not in seen:
            seen.add((c.arch, c.flash_attn))
            picked.append(c)
    return picked


GRAPH_CASES = _one_per_kind()


def _fmt_size(n: int) -> str:
    """ggml-backend.cpp ``fmt_size``."""
    return f"{n // 1024 // 1024}M" if n >= 1024 * 1024 else f"{n // 1024}K"


def _op_name(op: str) -> str:
    op = op.strip()
    if op in _UNARY:
        return "UNARY"
    if op in _GLU:
        return "GLU"
    return op[:10]  # "%10.10s": FLASH_ATTN_EXT is logged as FLASH_ATTN


def _logged_nodes(case: Case, path: Path) -> list[tuple[str, str]]:
    args = [str(path), str(case.n_ctx), str(case.n_seq), str(case.n_ubatch), "1" if case.flash_attn else "0"]
    env = dict(os.environ, GGML_SCHED_DEBUG="2")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, case.type_k, case.type_v],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    blocks: list[list[tuple[str, str]]] = []
    for line in proc.stdout.splitlines():
        if line.startswith("## SPLIT"):
            blocks.append([])
        elif blocks and (m := _NODE_RE.match(line)):
            blocks[-1].append((_op_name(m["op"]), m["size"]))
    assert blocks, "no graph logged: GGML_SCHED_DEBUG not honoured?"
    return blocks[-1]


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llamacpp-graphs")


@pytest.mark.parametrize("case", GRAPH_CASES, ids=[c.label for c in GRAPH_CASES])
def test_graph_nodes_match_llamacpp(case: Case, model_root: Path) -> None:
    from servefit.ggml_graph import build_graph, reserve_params
    from servefit.gguf import read_model_spec
    from servefit.memory import Context, context_cells, profile

    path = _model_file(replace(case, quant=None), model_root)
    spec = read_model_spec(str(path))
    ctx = Context(case.n_ctx, n_seq=case.n_seq, n_ubatch=case.n_ubatch, flash_attn=case.flash_attn)
    n_ctx, cells, swa_cells = context_cells(ctx, profile(spec).n_swa)
    prompt, _ = reserve_params(
        n_ubatch=min(case.n_ubatch, n_ctx),
        n_seq=case.n_seq,
        n_kv=cells,
        n_kv_swa=swa_cells,
        unified=False,
        flash_attn=case.flash_attn,
        type_k=case.type_k,
        type_v=case.type_v,
    )
    graph = build_graph(spec, prompt)
    assert graph is not None
    ours = [(_op_name(t.op), _fmt_size(t.nbytes)) for t in graph.nodes if t.op not in _VIEW_OPS]
    logged = _logged_nodes(case, path)
    for i, (a, b) in enumerate(zip(ours, logged, strict=False)):
        assert a == b, f"{case.label}: node {i} is {b} in llama.cpp, {a} here; llama.cpp's next: {logged[i : i + 4]}"
    assert len(ours) == len(logged)
