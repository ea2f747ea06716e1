"""The words of a deploy page, read from its Plan: headline, the fit sentence, the FAQ.

Every figure in these sentences is formatted by :mod:`servefit.web.fmt` from the same Plan field
that the page's tables show, so the prose states exactly what the tables state. The fit sentence
is chosen by the plan's strategy and nothing else: it cannot claim a full GPU fit when the plan
keeps experts or layers on the CPU, nor a fit when the plan says the model does not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from servefit.plan import Plan, Strategy
from servefit.web.fmt import fmt_count, fmt_gb, fmt_gib, fmt_money, fmt_seconds, fmt_tok_s

__all__ = ["Faq", "faq", "fit_sentence", "headline", "short_verdict", "strategy_label", "verdict"]

STRATEGY_LABELS: dict[Strategy, str] = {
    Strategy.GPU: "All on GPU",
    Strategy.GPU_CPU_MOE: "GPU, experts in RAM",
    Strategy.PARTIAL_OFFLOAD: "Partial GPU offload",
    Strategy.CPU: "CPU only",
    Strategy.DISK: "Reading from disk",
}


@dataclass(frozen=True, slots=True)
class Faq:
    question: str
    answer: str


def strategy_label(plan: Plan) -> str:
    """A short label for the plan's placement: ``"All on GPU"`` … ``"Does not run"``."""
    if not plan.fits or plan.strategy is None:
        return "Does not run"
    return STRATEGY_LABELS[plan.strategy]


SHORT_LABELS: dict[str, str] = {"gpu": "GPU", "hybrid": "GPU + CPU", "cpu": "CPU", "disk": "Disk", "no": "No"}


def short_verdict(plan: Plan) -> str:
    """One word for a table cell: ``GPU``, ``GPU + CPU``, ``CPU``, ``Disk``, ``No``."""
    return SHORT_LABELS[verdict(plan)]


def verdict(plan: Plan) -> str:
    """A CSS-friendly key of the fit: ``gpu``, ``hybrid``, ``cpu``, ``disk`` or ``no``."""
    if not plan.fits or plan.strategy is None:
        return "no"
    if plan.strategy is Strategy.GPU:
        return "gpu"
    if plan.strategy in (Strategy.GPU_CPU_MOE, Strategy.PARTIAL_OFFLOAD):
        return "hybrid"
    if plan.strategy is Strategy.CPU:
        return "cpu"
    return "disk"


def headline(plan: Plan) -> str:
    """``"Qwen3 8B (Q4_K_M) — 6.12 GB VRAM on Scaleway L4-1-24G"``."""
    if plan.fits and plan.vram_used_bytes > 0:
        used = f"{fmt_gb(plan.vram_used_bytes)} VRAM"
    elif plan.fits:
        used = f"{fmt_gb(plan.ram_required_bytes)} RAM"
    else:
        used = "does not fit"
    return f"{plan.model_name} ({plan.quant}) — {used} on {plan.target_name}"


def _gpus(plan: Plan) -> str:
    n = sum(1 for d in plan.devices if d.kind == "gpu")
    return "the GPU" if n <= 1 else f"the {n} GPUs"


def fit_sentence(plan: Plan) -> str:
    """One or two sentences on how the model runs on the target, read from the plan."""
    size = f"At {plan.quant} the model file is {fmt_gb(plan.model_bytes)}"
    ctx = f"a context of {fmt_count(plan.context)} tokens"
    if not plan.fits or plan.strategy is None:
        why = plan.reasons[0] if plan.reasons else "no placement fits its memory"
        return f"{size}. It does not run on {plan.target_name}: {why.rstrip('.')}."
    vram = f"{fmt_gb(plan.vram_used_bytes)} of the {fmt_gb(plan.vram_total_bytes)} of VRAM"
    layers = f"{plan.gpu_layers} of {plan.total_layers} layers"
    if plan.strategy is Strategy.GPU:
        text = f"{size}; all {plan.total_layers} layers run on {_gpus(plan)}, using {vram}, with {ctx}."
    elif plan.strategy is Strategy.GPU_CPU_MOE:
        rest = "everything else is" if plan.gpu_layers == plan.total_layers else f"{layers} are otherwise"
        text = (
            f"{size}. The routed experts of {plan.experts_on_cpu_layers} of its {plan.moe_layers} MoE layers stay in "
            f"system RAM (--n-cpu-moe {plan.n_cpu_moe}) and run on the CPU; {rest} on {_gpus(plan)}, "
            f"using {vram}, with {ctx}."
        )
    elif plan.strategy is Strategy.PARTIAL_OFFLOAD:
        text = (
            f"{size}. Only {layers} run on {_gpus(plan)} (using {vram}); the other "
            f"{plan.total_layers - plan.gpu_layers} run on the CPU from system RAM, with {ctx}."
        )
    elif plan.strategy is Strategy.CPU:
        text = (
            f"{size}. It runs on the CPU only, from system RAM: it needs {fmt_gb(plan.ram_required_bytes)} of the "
            f"{fmt_gb(plan.ram_total_bytes)} there, with {ctx}."
        )
    elif plan.gpu_layers:
        experts = (
            f", with the routed experts of {plan.experts_on_cpu_layers} MoE layers left on the host"
            if plan.n_cpu_moe
            else ""
        )
        text = (
            f"{size}; with {ctx}, {_gpus(plan)} and the {fmt_gb(plan.ram_total_bytes)} of system RAM cannot hold "
            f"everything. {layers.capitalize()} run on {_gpus(plan)} (using {vram}){experts}; llama.cpp reads the "
            "weights kept on the host from disk (memory-mapped) as it runs. It works, but the disk bounds the speed."
        )
    else:
        text = (
            f"{size}, more than the {fmt_gb(plan.ram_total_bytes)} of system RAM can hold with everything else, so "
            f"llama.cpp reads the weights from disk (memory-mapped) as it runs, with {ctx}. It works, but very slowly."
        )
    if plan.reading_from_disk and plan.strategy is not Strategy.DISK:
        text += " Part of the weights are read from disk as it runs, which is very slow."
    return text


def _speed_answer(plan: Plan) -> str | None:
    if plan.decode_tok_s is None:
        return None
    text = f"About {fmt_tok_s(plan.decode_tok_s)} when generating one stream"
    if plan.decode_tok_s_parallel is not None and plan.parallel > 1:
        text += f" ({fmt_tok_s(plan.decode_tok_s_parallel)} in all over {plan.parallel} parallel streams)"
    text += "."
    if plan.prefill_tok_s is not None:
        text += f" It reads prompts at about {fmt_tok_s(plan.prefill_tok_s)}"
        if plan.ttft_s is not None and plan.prompt_tokens:
            prompt = f"{fmt_count(plan.prompt_tokens)}-token prompt"
            text += f", so the first token of a {prompt} comes after {fmt_seconds(plan.ttft_s)}"
        text += "."
    if plan.bottleneck:
        text += f" Its speed is limited by {plan.bottleneck}."
    return text + " These are estimates from the hardware's bandwidth and compute, not measurements."


def faq(plan: Plan, prerequisites: Sequence[str], command: str) -> list[Faq]:
    """Questions and answers generated from the plan (also published as schema.org FAQPage)."""
    model = f"{plan.model_name} ({plan.quant})"
    items: list[Faq] = []
    need = f"The {plan.quant} file of {plan.model_name} is {fmt_gb(plan.model_bytes)} ({fmt_gib(plan.model_bytes)})."
    if plan.fits:
        need += (
            f" On {plan.target_name} the plan uses {fmt_gb(plan.vram_used_bytes)} of VRAM and needs at least "
            f"{fmt_gb(plan.ram_required_bytes)} of system RAM, with a context of {fmt_count(plan.context)} tokens."
        )
    items.append(Faq(f"How much memory does {model} need?", need))
    answer = ("Yes. " if plan.fits else "No. ") + fit_sentence(plan)
    items.append(Faq(f"Can I run {model} on {plan.target_name}?", answer))
    if plan.fits:
        ctx = f"This plan sets a context of {fmt_count(plan.context)} tokens"
        if plan.trained_context:
            ctx += f"; the model was trained for {fmt_count(plan.trained_context)}"
        ctx += f". The KV cache is stored as {plan.cache_type_k} (keys) and {plan.cache_type_v} (values)."
        items.append(Faq("What context length can I use?", ctx))
    speed = _speed_answer(plan) if plan.fits else None
    if speed:
        items.append(Faq(f"How fast is {model} on {plan.target_name}?", speed))
    if plan.fits and plan.cost_per_mtok is not None:
        cost = (
            f"About {fmt_money(plan.cost_per_mtok, plan.currency)} per million generated tokens at one stream, at "
            f"{fmt_money(plan.price_per_hour, plan.currency)} per hour"
        )
        if plan.cost_per_mtok_parallel is not None and plan.parallel > 1:
            cost += (
                f", or {fmt_money(plan.cost_per_mtok_parallel, plan.currency)} with {plan.parallel} parallel streams"
            )
        items.append(Faq("What does it cost per million tokens?", cost + "."))
    if plan.experts_on_cpu_layers > 0:
        items.append(
            Faq(
                "Why are some experts kept in system RAM?",
                f"A mixture-of-experts model uses only a few experts per token, so llama.cpp can keep the routed "
                f"experts of some layers in system RAM (--n-cpu-moe {plan.n_cpu_moe}) while attention and shared "
                f"weights stay on the GPU. Here {plan.experts_on_cpu_layers} of {plan.moe_layers} MoE layers do so.",
            )
        )
    fa = "on" if plan.flash_attention else "off"
    items.append(
        Faq(
            "Is flash attention on?",
            f"Flash attention is {fa} in this plan. It computes attention in tiles without storing the whole "
            f"attention matrix, which saves compute-buffer memory and lets the KV cache be quantized.",
        )
    )
    if plan.fits and command:
        steps = f"Run `{command}` against your Kubernetes cluster."
        if prerequisites:
            prep = " and ".join(f"`{c}`" for c in prerequisites)
            steps = f"Prepare the GPU nodes once with {prep}, then run `{command}`."
        items.append(Faq(f"How do I deploy {model} on {plan.target_name}?", steps))
    return items
