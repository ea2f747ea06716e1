"""``servefit models [QUERY] [--json]`` and ``servefit models show ID|path/to/config.json [--json]``.

Click parses a group's optional argument before its subcommands, so this is one command whose
first word may be ``show``: ``servefit models show qwen3-8b`` shows a model card and its quant
ladder, anything else is a search query over the catalog.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from servefit.catalog.models import LadderRung, ModelEntry

__all__ = ["config_card_json", "model_card_json", "register"]

GIB = 1 << 30


def register(app: typer.Typer) -> None:
    app.command(
        "models",
        help=(
            "List the model catalog, filtered by QUERY words; 'models show ID|config.json' shows a model "
            "card and its quant ladder (predicted tensor and file bytes per llama.cpp quant, published sizes)."
        ),
    )(models)


def models(
    words: Annotated[
        list[str] | None,
        typer.Argument(metavar="[QUERY]... | show ID|CONFIG.json", help="search words, or 'show' and a model"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    from servefit.errors import OptionsError

    args = list(words or [])
    if args and args[0] == "show":
        if len(args) != 2:
            raise OptionsError("usage: servefit models show ID|path/to/config.json [--json]", option="show")
        _show(args[1], as_json=as_json)
        return
    _list(" ".join(args), as_json=as_json)


def _params(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n < 1e12 else f"{n / 1e12:.2f}T"


def _context(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n // 1024}K" if n % 1024 == 0 else f"{n:,}"


def _list(query: str, *, as_json: bool) -> None:
    from servefit.catalog.models import search_models

    found = search_models(query)
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in found], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not found:
        console.print(f"no model matches {query!r}")
        return
    table = Table(title=f"Models ({len(found)})")
    table.add_column("id", no_wrap=True, min_width=max(len(m.id) for m in found))
    for column in ("name", "vendor", "params (total/active)", "context", "capabilities", "license"):
        table.add_column(column)
    for m in found:
        params = _params(m.total_params) if not m.is_moe else f"{_params(m.total_params)}/{_params(m.active_params)}"
        table.add_row(
            m.id, m.name, m.vendor, params, _context(m.context_advertised), ", ".join(m.capabilities), m.license
        )
    console.print(table)


def model_card_json(entry: ModelEntry, ladder: tuple[LadderRung, ...]) -> dict[str, Any]:
    """The JSON of ``servefit models show ID --json``: the catalog row, its llama.cpp architecture, its quants."""
    from servefit.inventory import hparams_from_config

    arch, _ = hparams_from_config(entry.config_dict())
    return {**entry.to_dict(), "architecture": arch, "quants": [r.to_dict() for r in ladder]}


def config_card_json(path: str, config: dict[str, Any], ladder: tuple[LadderRung, ...]) -> dict[str, Any]:
    """The JSON of ``servefit models show path/to/config.json --json``."""
    from servefit.inventory import hparams_from_config

    arch, hp = hparams_from_config(config)
    name = str(config.get("_name_or_path") or "") or path
    return {
        "id": None,
        "name": name,
        "source": path,
        "architecture": arch,
        "model_type": config.get("model_type"),
        "n_layer": hp.n_layer,
        "n_embd": hp.n_embd,
        "n_vocab": hp.n_vocab,
        "context_trained": hp.n_ctx_train or None,
        "config": config,
        "quants": [r.to_dict() for r in ladder],
    }


def _show(ident: str, *, as_json: bool) -> None:
    from servefit.catalog.models import config_ladder, get_model, is_config_path, model_ladder, read_config_json

    if is_config_path(ident):
        config = read_config_json(ident)
        payload = config_card_json(ident, config, config_ladder(config))
    else:
        entry = get_model(ident)
        payload = model_card_json(entry, model_ladder(entry.id))
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_card(payload)


_CARD_FIELDS = (
    "id",
    "name",
    "vendor",
    "family",
    "architecture",
    "total_params",
    "active_params",
    "capabilities",
    "context_trained",
    "context_advertised",
    "license",
    "hf_repo",
    "description",
    "source",
    "notes",
)


def _print_card(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    card = Table(show_header=False, title=str(payload.get("id") or payload.get("name")))
    card.add_column("field")
    card.add_column("value", overflow="fold")
    for key in _CARD_FIELDS:
        value = payload.get(key)
        if value in (None, "", []):
            continue
        if key in ("total_params", "active_params") and isinstance(value, int):
            value = f"{value:,} ({_params(value)})"
        elif key.startswith("context") and isinstance(value, int):
            value = f"{value:,} tokens"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        card.add_row(key, str(value))
    for repo in payload.get("gguf_repos", []):
        card.add_row("gguf", f"{repo['repo']}" + (f" ({len(repo['quants'])} quants)" if repo["quants"] else ""))
    console.print(card)
    ladder = Table(title="Quant ladder (sizes in GiB = 2^30 bytes)")
    for column in ("quant", "tensor data (GiB)", "file (GiB)", "bits/weight", "source"):
        ladder.add_column(column)
    for q in payload["quants"]:
        tensor = "-" if q["tensor_bytes"] is None else f"{q['tensor_bytes'] / GIB:.2f}"
        source = q["source"] if not q["size_text"] else f"{q['source']} ({q['size_text']})"
        ladder.add_row(q["name"], tensor, f"{q['file_bytes'] / GIB:.2f}", f"{q['bits_per_weight']:.2f}", source)
    console.print(ladder)
