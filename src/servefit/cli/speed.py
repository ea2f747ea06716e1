"""``servefit compare`` and ``servefit recommend``: where should I run this model, how fast, at what cost."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from servefit.plan import Plan

__all__ = ["register", "render_table"]


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _price(plan: Plan) -> str:
    if plan.price_per_hour is None:
        return "-"
    return f"{plan.price_per_hour:.2f} {plan.currency}/h".strip()


def _cost(plan: Plan) -> str:
    if plan.cost_per_mtok is None:
        return "-"
    return f"{plan.cost_per_mtok:.2f} {plan.currency}"


def render_table(plans: list[Plan], *, title: str) -> str:
    """The ranked plans as a plain-text table (one line per target)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("#", "right"),
        ("target", "left"),
        ("quant", "left"),
        ("strategy", "left"),
        ("context", "right"),
        ("decode tok/s", "right"),
        ("prefill tok/s", "right"),
        ("price", "right"),
        ("cost / M tokens", "right"),
        ("bottleneck", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, p in enumerate(plans, 1):
        table.add_row(
            str(i),
            p.target_id,
            p.quant,
            str(p.strategy) if p.strategy else "-",
            f"{p.context:,}",
            _num(p.decode_tok_s),
            _num(p.prefill_tok_s, "{:.0f}"),
            _price(p),
            _cost(p),
            p.bottleneck,
        )
    console = Console(width=200, record=True, force_terminal=False, color_system=None)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


def _footer(plans: list[Plan]) -> str:
    prompt = plans[0].prompt_tokens if plans else 0
    text = (
        f"decode at a depth of {prompt:,} tokens, one stream; prefill of a {prompt:,}-token prompt; "
        "cost per million generated tokens at one stream. Expected error: docs/speed-accuracy.md."
    )
    currencies = sorted({p.currency for p in plans if p.currency})
    if len(currencies) > 1:
        text += f"\nprices in {' and '.join(currencies)} are ranked at face value (no exchange rate applied)."
    return text


def _emit(plans: list[Plan], *, as_json: bool, title: str, empty: str) -> None:
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in plans], indent=2, default=str))
        return
    if not plans:
        typer.echo(empty)
        return
    typer.echo(render_table(plans, title=title).rstrip())
    typer.echo(_footer(plans))


def compare_command(
    model: Annotated[str, typer.Argument(help="Catalog model id, config.json path or GGUF source.")],
    quant: Annotated[str, typer.Option("--quant", "-q", help="Quantization, e.g. Q4_K_M.")],
    min_context: Annotated[int | None, typer.Option("--min-context", min=1, help="Context the plan must hold.")] = None,
    min_tok_s: Annotated[float | None, typer.Option("--min-tok-s", min=0.0, help="Minimum decode tokens/s.")] = None,
    max_price: Annotated[float | None, typer.Option("--max-price", min=0.0, help="Maximum price per hour.")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this cloud provider's targets.")] = None,
    sort: Annotated[str, typer.Option("--sort", help="cost | price | decode | prefill")] = "cost",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plans as JSON.")] = False,
) -> None:
    """Every catalog target that runs MODEL at QUANT, ranked by cost per million tokens."""
    from servefit.speed import compare

    plans = compare(
        model, quant, min_context=min_context, min_tok_s=min_tok_s, max_price=max_price, provider=provider, sort=sort
    )
    _emit(plans, as_json=as_json, title=f"{model} {quant}: where it runs", empty="no catalog target meets the bar")


def recommend_command(
    model: Annotated[str, typer.Argument(help="Catalog model id.")],
    min_context: Annotated[int | None, typer.Option("--min-context", min=1, help="Context the plan must hold.")] = None,
    min_tok_s: Annotated[float | None, typer.Option("--min-tok-s", min=0.0, help="Minimum decode tokens/s.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plans as JSON.")] = False,
) -> None:
    """The cheapest target and quant that meet the bar, then the runner-ups."""
    from servefit.speed import recommend

    plans = recommend(model, min_context=min_context, min_tok_s=min_tok_s)
    _emit(plans, as_json=as_json, title=f"{model}: recommended first", empty="no catalog target meets the bar")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
    app.command("recommend")(recommend_command)
