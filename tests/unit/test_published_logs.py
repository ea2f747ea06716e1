"""The memory model against buffer sizes llama.cpp printed on real GPUs (tests/data/published_llama_logs.yaml).

The figures in the data file come from published load logs, not from servefit. The KV cache is
exact arithmetic, so it must match to the printed precision; the weights depend on the catalog's
predicted tensor types and on which device each layer lands on, so they get a tolerance small
enough to catch a layer on the wrong device; the compute buffers are allocator high-water marks and
get a looser bound, with the known misses marked strict-xfail so a fix shows up as a failure here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from servefit.model import ModelSpec
from servefit.plan import MIB

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "published_llama_logs.yaml"

RUNNERS = {"llama-server", "llama-cli", "llama-bench", "llama-sweep-bench", "ollama", "lm-studio", "ramalama"}
BACKENDS = {"cuda", "metal", "rocm", "vulkan", "rpc"}
GROUPS = {"model", "kv", "kv_swa", "output", "compute"}
HOST_NAMES = {"CPU", "CPU_Mapped", "CUDA_Host", "Vulkan_Host", "ROCm_Host"}
FLAG_KEYS = {
    "n_ctx",
    "n_batch",
    "n_ubatch",
    "n_gpu_layers",
    "n_layers_total",
    "flash_attn",
    "n_seq",
    "kv_unified",
    "type_k",
    "type_v",
    "mmap",
    "swa_full",
}

# Weights: every catalog file in the data matches its whole-file tensor bytes to 0.02 MiB and 23 of
# 25 buffer lines match within 0.05 MiB; the largest miss is 6.13 MiB (0.4 %) moved between host and
# GPU in one Ollama partial offload. One transformer layer is 1.2 % (80 layers) to 3 % (32
# layers) of a model, more of one device's share, so 1 % passes quant-mix and padding noise and
# still fails when a single layer is put on the wrong device.
WEIGHTS_REL_TOL = 0.01
# Compute buffers are the graph allocator's peak, which includes tensors kept alive beside the
# largest one: two FFN rows beside the logits make 16 % of the Vulkan line at -ub 1024. 20 % passes
# that and still fails when a whole term is missing (the logits or the attention scores are at least
# 40 % of every GPU compute line here).
COMPUTE_REL_TOL = 0.20


def _script() -> ModuleType:
    name = "gen_gpu_accuracy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "gen_gpu_accuracy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@cache
def _records() -> tuple[dict[str, Any], ...]:
    return tuple(_script().load_records(DATA))


def _ids() -> list[str]:
    return [r["id"] for r in _records()]


def _record(rid: str) -> dict[str, Any]:
    return next(r for r in _records() if r["id"] == rid)


@cache
def _spec(rid: str) -> ModelSpec | None:
    spec: ModelSpec | None = _script().spec_of(_record(rid))
    return spec


def _catalog_ids() -> list[str]:
    return [r["id"] for r in _records() if r["model"].get("catalog_id")]


def _mib(value: Any) -> float:
    result: float = _script().mib(value)
    return result


# --------------------------------------------------------------------------------------------
# The data file itself
# --------------------------------------------------------------------------------------------


def test_records_are_unique_and_enough() -> None:
    ids = _ids()
    assert len(ids) == len(set(ids))
    assert len(ids) >= 12
    assert sum(1 for r in _records() if r["backend"] == "cuda") >= 6
    assert {r["backend"] for r in _records()} >= {"cuda", "metal", "rocm", "vulkan"}


@pytest.mark.parametrize("rid", _ids())
def test_record_is_sourced_and_well_formed(rid: str) -> None:
    r = _record(rid)
    src = r["source"]
    assert src.get("url", "").startswith("https://") or (str(src.get("index_id", "")).isdigit() and src.get("where"))
    assert r["runner"] in RUNNERS
    assert r["log_format"] in {"2024", "2025", "2026"}
    assert r["backend"] in BACKENDS
    assert r["model"]["name"] and r["model"]["arch"]
    assert r["gpus"] and len(r["gpus"]) == len(r["devices"])
    flags = r["flags"]
    assert set(flags) == FLAG_KEYS
    assert 0 < flags["n_ubatch"] <= flags["n_batch"]
    assert 0 < flags["n_gpu_layers"] <= flags["n_layers_total"]
    assert flags["n_ctx"] > 0 and flags["n_seq"] >= 1
    assert set(r.get("inferred", [])) <= FLAG_KEYS
    assert set(r["buffers"]) <= GROUPS and r["buffers"]
    assert set(r.get("missing", [])) <= GROUPS - set(r["buffers"])
    assert isinstance(r["pipeline_parallel"], bool)
    if r["pipeline_parallel"]:  # llama.cpp enables it only for several devices holding every layer
        assert len(r["devices"]) > 1 and flags["n_gpu_layers"] == flags["n_layers_total"]
    devices = set(r["devices"])
    for group, lines in r["buffers"].items():
        for name, value in lines.items():
            assert name in devices | HOST_NAMES | {f"{d}_Mapped" for d in devices}, (group, name)
            values = value if isinstance(value, list) else [value]
            assert values and all(isinstance(v, int | float) and v > 0 for v in values), (group, name)


@pytest.mark.parametrize("rid", _catalog_ids())
def test_catalog_models_build(rid: str) -> None:
    spec = _spec(rid)
    assert spec is not None, f"{_record(rid)['model']['catalog_id']} {_record(rid)['model']['quant']}"
    assert spec.hparams.n_layer + 1 == _record(rid)["flags"]["n_layers_total"]


# --------------------------------------------------------------------------------------------
# The memory model against the logs
# --------------------------------------------------------------------------------------------


def _rows(rid: str, kind: str) -> list[Any]:
    spec = _spec(rid)
    assert spec is not None
    return [row for row in _script().compare(_record(rid), spec) if row.kind == kind]


@pytest.mark.parametrize("rid", [i for i in _catalog_ids() if "kv" in _record(i)["buffers"]])
def test_kv_buffers_match_exactly(rid: str) -> None:
    rows = _rows(rid, "kv")
    assert rows
    for row in rows:
        assert row.ours_mib == pytest.approx(row.log_mib, abs=0.01), row


@pytest.mark.parametrize("rid", _catalog_ids())
def test_model_buffers_within_tolerance(rid: str) -> None:
    rows = _rows(rid, "model")
    assert len(rows) == len(_record(rid)["buffers"]["model"])  # every printed weights line is compared
    for row in rows:
        assert row.ours_mib == pytest.approx(row.log_mib, rel=WEIGHTS_REL_TOL, abs=0.01), row


@pytest.mark.parametrize(
    "rid", [i for i in _catalog_ids() if "output" in _record(i)["buffers"] and _record(i)["log_format"] != "2024"]
)
def test_output_buffer_is_one_row_of_logits_per_sequence(rid: str) -> None:
    # 2024-era builds also reserved embedding rows; current builds reserve n_vocab F32 per sequence
    (row,) = _rows(rid, "output")
    assert row.ours_mib == pytest.approx(row.log_mib, abs=0.005), row


_COMPUTE_MISSES = {
    "gpt-oss-120b-mxfp4-metal-m4max-c4096": "without flash attention gpt-oss keeps more than the scores alive",
}


@pytest.mark.parametrize(
    "rid",
    [
        pytest.param(i, marks=pytest.mark.xfail(strict=True, reason=_COMPUTE_MISSES[i])) if i in _COMPUTE_MISSES else i
        for i in _catalog_ids()
        if "compute" in _record(i)["buffers"]
    ],
)
def test_gpu_compute_buffers_within_tolerance(rid: str) -> None:
    rows = [row for row in _rows(rid, "compute") if row.line not in HOST_NAMES]
    assert rows
    for row in rows:
        assert row.ours_mib == pytest.approx(row.log_mib, rel=COMPUTE_REL_TOL), row


@pytest.mark.parametrize("rid", [i for i in _catalog_ids() if "compute" in _record(i)["buffers"]])
def test_host_compute_rule_explains_the_logs(rid: str) -> None:
    """The graph inputs (F32 KQ masks + one embedding row per token) are the host compute buffer."""
    spec = _spec(rid)
    assert spec is not None
    name_value = _script().host_buffer(_record(rid), "compute")
    assert name_value is not None
    rule = _script().suggested_host_compute_mib(_record(rid), spec)
    assert rule == pytest.approx(name_value[1], rel=0.05, abs=6.0)


def _host_compute_rows(flash_attn: bool) -> list[Any]:
    rows = []
    for rid in _catalog_ids():
        r = _record(rid)
        if "compute" in r["buffers"] and r["flags"]["flash_attn"] is flash_attn:
            rows += [row for row in _rows(rid, "compute") if row.line in HOST_NAMES]
    return rows


def test_memory_model_host_compute_without_flash_attention() -> None:
    rows = _host_compute_rows(False)
    assert len(rows) >= 4
    for row in rows:
        assert row.ours_mib == pytest.approx(row.log_mib, rel=0.05, abs=6.0), row


@pytest.mark.xfail(
    strict=True,
    reason="the published builds made an F32 KQ mask and cast it on the device; the vendored llama.cpp "
    "creates it F16 under flash attention, which the memory model follows",
)
def test_memory_model_host_compute_with_flash_attention() -> None:
    rows = _host_compute_rows(True)
    assert len(rows) >= 3
    for row in rows:
        assert row.ours_mib == pytest.approx(row.log_mib, rel=0.05, abs=6.0), row


def test_whole_file_weights_of_the_anchor_load() -> None:
    """Llama 3 8B Q4_K_M fully offloaded: 4403.49 MiB on CUDA0 and 281.81 MiB on the host, as printed."""
    rid = "llama3-8b-q4km-rtx3070-c512"
    spec = _spec(rid)
    assert spec is not None
    b = _script().breakdown_of(_record(rid), spec)
    assert b.gpu_weights[0] / MIB == pytest.approx(_mib(_record(rid)["buffers"]["model"]["CUDA0"]), abs=0.01)


def test_pipeline_copies_explain_the_eight_gpu_host_compute() -> None:
    """8 GPUs with every layer: 4 copies of the F32 KQ mask + the embedded tokens on the host (78.02 MiB)."""
    from servefit.catalog.models import model_spec
    from servefit.memory import memory_breakdown

    r = _record("deepseek-r1-671b-ollama-rocm8-np4-c8192")
    assert r["pipeline_parallel"] is True
    spec = model_spec("deepseek-r1", "Q4_K_M")  # same n_embd and vocabulary as the published file
    layout = _script().layout_of(r)
    b = memory_breakdown(spec, _script().context_of(r), layout, backend="rocm")
    assert b.pipeline_parallel
    assert b.host_compute / MIB == pytest.approx(_mib(r["buffers"]["compute"]["ROCm_Host"]), abs=0.1)
    single = memory_breakdown(
        spec, _script().context_of(r), dataclasses.replace(layout, pipeline_parallel=False), backend="rocm"
    )
    assert single.host_compute < b.host_compute  # without pipeline copies the log cannot be explained


@pytest.mark.parametrize(
    "rid", [i for i in _catalog_ids() if len(_record(i)["devices"]) > 1 and not _record(i)["pipeline_parallel"]]
)
def test_multi_device_loads_without_pipeline_copies(rid: str) -> None:
    """RPC loads whose backend did not pipeline: the per-device compute lines without input copies, within 2 %."""
    rows = [row for row in _rows(rid, "compute") if row.line not in HOST_NAMES]
    assert rows
    for row in rows:
        assert row.ours_mib == pytest.approx(row.log_mib, rel=0.02), row
