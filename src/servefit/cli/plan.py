"""``servefit plan SOURCE --on TARGET``: how llama.cpp runs a model on a machine, buffer by buffer.

Prints the requirements table (model size, VRAM, RAM, GPU layers, context, backend, flash
attention, disk reading, strategy, experts on CPU), the per-device breakdown, the speed line when
known and the llama-server command line. A plan that does not fit is printed with its reasons and
exit code 0; errors (unknown model or hardware, bad options) exit 1.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated

import typer

from servefit.errors import OptionsError

if TYPE_CHECKING:
    from servefit.plan import Plan

__all__ = ["parse_size", "register", "render_plan"]

GIB = 1 << 30
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": GIB, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30}
_UNITS["ti"] = 2**40


def parse_size(text: str, *, option: str) -> int:
    """Bytes from ``24GB`` (10^9), ``24GiB`` (2^30), ``512MiB``; a bare number is GiB."""
    m = _SIZE_RE.match(text)
    if not m:
        raise OptionsError(f"--{option}: cannot read size {text!r} (use e.g. 24GB, 24GiB or 512MiB)", option=option)
    unit = (m.group(2) or "").lower().rstrip("b")
    return round(float(m.group(1)) * _UNITS[unit])


def register(app: typer.Typer) -> None:
    app.command("plan", help="Plan how llama.cpp runs a model on a machine: placement, memory, flags.")(plan)


def plan(
    source: Annotated[
        str, typer.Argument(help="GGUF path/URL, hf://..., owner/repo:QUANT, catalog model id or config.json path")
    ],
    on: Annotated[str, typer.Option("--on", help="target hardware: 2xL4, scaleway/l4-2-24g, cpu, ...")],
    quant: Annotated[str | None, typer.Option("--quant", help="quantization for catalog ids and configs")] = None,
    ctx: Annotated[int | None, typer.Option("--ctx", "-c", help="context (-c); default: the largest that fits")] = None,
    parallel: Annotated[int, typer.Option("--parallel", "-np", help="parallel slots (-np)")] = 1,
    batch: Annotated[int, typer.Option("--batch", "-b", help="logical batch (-b)")] = 2048,
    ubatch: Annotated[int, typer.Option("--ubatch", "-ub", help="physical batch (-ub)")] = 512,
    cache_type_k: Annotated[str, typer.Option("--cache-type-k", "-ctk", help="K cache type")] = "f16",
    cache_type_v: Annotated[str, typer.Option("--cache-type-v", "-ctv", help="V cache type")] = "f16",
    flash_attn: Annotated[str, typer.Option("--flash-attn", "-fa", help="on, off or auto")] = "auto",
    vram: Annotated[str | None, typer.Option("--vram", help="override total VRAM, e.g. 48GB")] = None,
    ram: Annotated[str | None, typer.Option("--ram", help="override host RAM, e.g. 96GB")] = None,
    no_mmap: Annotated[bool, typer.Option("--no-mmap", help="load weights into RAM instead of mapping")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
) -> None:
    from servefit.hardware import resolve_target
    from servefit.plan import FlashAttn, Options
    from servefit.planner import make_plan
    from servefit.resolve import resolve_model, with_source_warnings

    try:
        fa = FlashAttn(flash_attn.lower())
    except ValueError as exc:
        raise OptionsError(f"--flash-attn must be on, off or auto, not {flash_attn!r}", option="flash-attn") from exc
    options = Options(
        context=ctx,
        parallel=parallel,
        batch=batch,
        ubatch=ubatch,
        cache_type_k=cache_type_k.lower(),
        cache_type_v=cache_type_v.lower(),
        flash_attn=fa,
        mmap=not no_mmap,
    )
    machine = resolve_target(
        on,
        vram_bytes=parse_size(vram, option="vram") if vram else None,
        ram_bytes=parse_size(ram, option="ram") if ram else None,
    )
    spec = resolve_model(source, quant)
    result = with_source_warnings(make_plan(spec, machine, options), spec)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        typer.echo(render_plan(result))


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def render_plan(p: Plan) -> str:
    """The human form of a plan: requirements table, devices, speed, command line (GB = 10^9 bytes)."""
    lines: list[str] = []
    title = p.model_name or p.model_id
    lines.append(f"{title} {p.quant} on {p.target_name or p.target_id}")
    lines.append("")
    status = "fits" if p.fits else "does NOT fit"
    # on unified memory (DGX Spark, Apple, Strix Halo) the GPU's share is carved out of system RAM: one
    # pool, which "Min RAM required" counts once
    vram_note, ram_note = (" (unified: part of system RAM)", " (shared with the GPU)") if p.unified_memory else ("", "")
    rows: list[tuple[str, str]] = [
        ("Result", f"{status}" + (f" ({p.strategy})" if p.strategy else "")),
        ("Model size", _gb(p.model_bytes)),
        ("VRAM available", _gb(p.vram_total_bytes) + vram_note if p.vram_total_bytes else "none (CPU only)"),
        ("VRAM used", _gb(p.vram_used_bytes)),
        ("System RAM", _gb(p.ram_total_bytes) + ram_note),
        ("Min RAM required", _gb(p.ram_required_bytes)),
        ("GPU layers", f"{p.gpu_layers}/{p.total_layers}"),
        ("Context", f"{p.context:,} tokens" + (f" ({p.parallel} slots)" if p.parallel > 1 else "")),
        ("Backend", p.backend),
        ("Flash attention", "on" if p.flash_attention else "off"),
        ("KV cache", f"K {p.cache_type_k}, V {p.cache_type_v}"),
        ("Reading from disk", "yes (very slow)" if p.reading_from_disk else "no"),
        ("Strategy", str(p.strategy) if p.strategy else "-"),
    ]
    if p.moe_layers:
        rows.append(("Experts on CPU", f"{p.experts_on_cpu_layers}/{p.moe_layers} MoE layers"))
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append("  Memory by device (GB = 10^9 bytes)")
    head = ("device", "weights", "KV", "recurrent", "compute", "other", "total", "capacity")
    table = [head] + [
        (
            d.name,
            f"{d.weights_bytes / 1e9:.2f}",
            f"{d.kv_bytes / 1e9:.2f}",
            f"{d.recurrent_bytes / 1e9:.2f}",
            f"{d.compute_bytes / 1e9:.2f}",
            f"{d.other_bytes / 1e9:.2f}",
            f"{d.total_bytes / 1e9:.2f}",
            f"{d.capacity_bytes / 1e9:.2f}",
        )
        for d in p.devices
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        lines.append("  " + "  ".join(cells))
    if p.decode_tok_s is not None:
        speed = f"  Speed: {p.decode_tok_s:.1f} tok/s decode"
        if p.prefill_tok_s is not None:
            speed += f", {p.prefill_tok_s:.0f} tok/s prefill"
        if p.ttft_s is not None:
            speed += f", {p.ttft_s:.1f} s to first token ({p.prompt_tokens} prompt tokens)"
        if p.cost_per_mtok is not None:
            speed += f", {p.cost_per_mtok:.2f} {p.currency}/Mtok"
        lines += ["", speed]
    if p.reasons:
        lines += ["", "  Why not a faster placement:" if p.fits else "  Why it does not fit:"]
        lines += [f"    - {r}" for r in p.reasons]
    if p.warnings:
        lines += ["", "  Warnings:"]
        lines += [f"    - {w}" for w in p.warnings]
    if p.fits:
        model_ref = f"-hf {p.gguf_repo}:{p.quant}" if p.gguf_repo else "-m MODEL.gguf"
        lines += ["", "  llama-server " + model_ref + " " + " ".join(p.llama_server_args)]
    return "\n".join(lines)
