"""The fit sentence, headline and FAQ for every strategy, including a plan that does not fit.

Plans here are built by hand (real Plan dataclasses): the catalog has no combination that fails
outright, so the "does not run" wording is exercised on a constructed plan.
"""

from __future__ import annotations

import dataclasses

import pytest

from servefit.plan import GIB, DeviceUsage, Plan, Strategy
from servefit.web import fmt, svg, text

GPU = DeviceUsage("CUDA0 (NVIDIA L4)", "gpu", 24 * 10**9, 18 * 10**9, 2 * 10**9, 0, 300 * 2**20, 400 * 2**20)
HOST = DeviceUsage("host", "host", 96 * 10**9, 600_000_000, 0, 0, 0, 0)

BASE = Plan(
    model_id="m", model_name="Model 30B", quant="Q4_K_M", target_id="t/x", target_name="Target X",
    gpu_class="nvidia-l4-24gb", gguf_repo="o/r", fits=True, strategy=Strategy.GPU, reasons=(), context=32768,
    parallel=1, gpu_layers=48, total_layers=48, n_cpu_moe=0, tensor_split=(), flash_attention=True,
    cache_type_k="f16", cache_type_v="f16", batch=2048, ubatch=512, backend="cuda12", model_bytes=18 * 10**9,
    vram_total_bytes=24 * 10**9, vram_used_bytes=GPU.total_bytes, ram_total_bytes=96 * 10**9,
    ram_required_bytes=3 * GIB, reading_from_disk=False, devices=(GPU, HOST), llama_server_args=(),
    trained_context=131072, moe_layers=48,
)  # fmt: skip


def _plan(**changes: object) -> Plan:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_full_gpu_sentence_names_all_layers_and_vram() -> None:
    s = text.fit_sentence(BASE)
    assert "all 48 layers run on the GPU" in s
    assert fmt.fmt_gb(BASE.vram_used_bytes) in s and "24.00 GB of VRAM" in s
    assert "32,768 tokens" in s
    assert "does not run" not in s


def test_moe_offload_sentence_states_experts_in_ram() -> None:
    p = _plan(strategy=Strategy.GPU_CPU_MOE, n_cpu_moe=20, experts_on_cpu_layers=20)
    s = text.fit_sentence(p)
    assert "20 of its 48 MoE layers stay in system RAM (--n-cpu-moe 20)" in s
    assert "all 48 layers run" not in s
    assert any(f.question.startswith("Why are some experts") for f in text.faq(p, [], "helmfile x"))


def test_partial_offload_sentence_counts_cpu_layers() -> None:
    p = _plan(strategy=Strategy.PARTIAL_OFFLOAD, gpu_layers=30)
    s = text.fit_sentence(p)
    assert "Only 30 of 48 layers run on the GPU" in s
    assert "the other 18 run on the CPU" in s


def test_cpu_and_disk_sentences() -> None:
    cpu = text.fit_sentence(_plan(strategy=Strategy.CPU, gpu_layers=0))
    assert "runs on the CPU only" in cpu
    disk = text.fit_sentence(_plan(strategy=Strategy.DISK, gpu_layers=0, reading_from_disk=True))
    assert "reads the weights from disk" in disk and "very slowly" in disk


def test_not_fitting_plan_says_no_everywhere() -> None:
    p = _plan(fits=False, strategy=None, reasons=("needs 900.00 GB of RAM, the target has 96.00 GB",))
    s = text.fit_sentence(p)
    assert "It does not run on Target X: needs 900.00 GB of RAM" in s
    assert "all 48 layers" not in s
    assert text.headline(p).endswith("does not fit on Target X")
    assert text.verdict(p) == "no" and text.strategy_label(p) == "Does not run"
    answers = {f.question: f.answer for f in text.faq(p, [], "")}
    assert answers["Can I run Model 30B (Q4_K_M) on Target X?"].startswith("No. ")
    assert not any("deploy" in q for q in answers)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_faq_answers_only_repeat_plan_figures(strategy: Strategy) -> None:
    p = _plan(strategy=strategy, decode_tok_s=42.0, prefill_tok_s=900.0, ttft_s=4.55, prompt_tokens=4096,
              cost_per_mtok=5.2, price_per_hour=0.79, currency="EUR", bottleneck="memory bandwidth")  # fmt: skip
    joined = " ".join(f.answer for f in text.faq(p, ["ansible-playbook x"], "helmfile y"))
    assert "42.0 tok/s" in joined and "900 tok/s" in joined and "4.55 s" in joined
    assert "5.20 EUR" in joined and "0.79 EUR" in joined
    assert "`ansible-playbook x`" in joined and "`helmfile y`" in joined


def test_memory_svg_has_a_bar_per_device_and_accessible_text() -> None:
    over = DeviceUsage("CUDA1 (NVIDIA L4)", "gpu", 24 * 10**9, 25 * 10**9, 0, 0, 0, 0)
    picture = svg.memory_svg(_plan(devices=(GPU, over, HOST)))
    assert picture.count('class="svg-track"') == 3
    assert "(over capacity)" in picture and "svg-over" in picture
    assert '<title id="mem-title">' in picture and "CUDA0 (NVIDIA L4): Weights 18.00 GB" in picture
    assert picture.count('class="seg-kv"') == 1 + 1  # GPU row + legend


def test_units_are_named() -> None:
    assert fmt.fmt_gb(1_500_000_000) == "1.50 GB"
    assert fmt.fmt_gib(3 * 2**30 // 2) == "1.50 GiB"
    assert fmt.fmt_tok_s(None) == "—"
    assert fmt.fmt_money(0.0123, "EUR") == "0.0123 EUR"
