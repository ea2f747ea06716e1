"""``servefit inspect SOURCE [--json] [--tensors]``: what a GGUF file holds, read from its header only.

The summary shows the architecture, parameters, file size, type histogram, layer kinds, KV cache
bytes per token (f16), recurrent state bytes per sequence and trained context; ``--tensors`` adds
every tensor; ``--json`` prints the same as one JSON object (``inspect_json``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from servefit.model import ModelSpec

__all__ = ["inspect_json", "metadata_json", "register", "render_summary"]

MAX_ARRAY_SHOWN = 64


def register(app: typer.Typer) -> None:
    app.command("inspect", help="Read a GGUF header (file, split, URL, hf://, owner/repo:QUANT) and summarize it.")(
        inspect
    )


def inspect(
    source: Annotated[
        str, typer.Argument(help="GGUF path, split first part, URL, hf://owner/repo/file.gguf, owner/repo:QUANT")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print everything as one JSON object")] = False,
    tensors: Annotated[bool, typer.Option("--tensors", help="list every tensor")] = False,
) -> None:
    from servefit.gguf import read_model_spec
    from servefit.sources import looks_like_gguf_source

    remote = source.startswith(("http://", "https://", "hf://")) or (
        looks_like_gguf_source(source) and not source.lower().endswith(".gguf")
    )
    spec = _read_with_progress(source) if remote else read_model_spec(source)
    if as_json:
        typer.echo(json.dumps(inspect_json(spec), indent=2, allow_nan=False))
    else:
        from rich.console import Console

        render_summary(spec, Console(), with_tensors=tensors)


def _read_with_progress(source: str) -> ModelSpec:
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn

    from servefit.gguf import read_model_spec

    with Progress(
        SpinnerColumn(),
        TextColumn("reading GGUF header of {task.description}"),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(source, total=None)

        def report(done: int, total: int | None) -> None:
            progress.update(task, completed=done)

        return read_model_spec(source, progress=report)


# --------------------------------------------------------------------------------------------
# JSON


def _json_value(value: Any) -> Any:
    from servefit.gguf import GGUFArray

    if isinstance(value, GGUFArray):
        if value.values is None or value.length > MAX_ARRAY_SHOWN:
            return {"type": "array", "item_type": value.item_type, "length": value.length}
        return [_json_value(v) for v in value.values]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def metadata_json(metadata: dict[str, object]) -> dict[str, Any]:
    """Every key/value; arrays longer than 64 items appear as their item type and length."""
    return {key: _json_value(value) for key, value in metadata.items()}


def _memory_figures(spec: ModelSpec) -> tuple[int | None, int | None]:
    try:
        from servefit.memory import kv_bytes_per_token, recurrent_bytes_per_sequence
    except ImportError:  # the memory model is optional for inspection
        return None, None
    return kv_bytes_per_token(spec, "f16", "f16"), recurrent_bytes_per_sequence(spec)


def inspect_json(spec: ModelSpec) -> dict[str, Any]:
    """The JSON object ``servefit inspect --json`` prints."""
    kv, recurrent = _memory_figures(spec)
    hp = spec.hparams
    return {
        "source": spec.source,
        "name": spec.name,
        "architecture": spec.architecture,
        "ftype": spec.ftype,
        "file_bytes": spec.file_bytes,
        "tensor_bytes": spec.tensor_bytes,
        "tensor_count": len(spec.tensors),
        "parameters": spec.parameters,
        "n_layers": hp.n_layer,
        "n_nextn_layers": hp.n_nextn_layer,
        "context_length": hp.n_ctx_train,
        "vocab_size": hp.n_vocab,
        "n_embd": hp.n_embd,
        "n_swa": hp.n_swa,
        "n_expert": hp.n_expert,
        "n_expert_used": hp.n_expert_used,
        "kv_bytes_per_token_f16": kv,
        "recurrent_bytes_per_sequence": recurrent,
        "gguf_repo": spec.gguf_repo,
        "types": _type_histogram(spec),
        "layers": [{"index": layer.index, "kind": layer.kind} for layer in spec.layers],
        "tensors": [
            {
                "name": t.name,
                "type": t.ggml_type,
                "shape": list(t.shape),
                "bytes": t.nbytes,
                "layer": t.layer,
                "role": str(t.role),
                "split": t.split,
            }
            for t in spec.tensors
        ],
        "metadata": metadata_json(spec.metadata),
    }


def _type_histogram(spec: ModelSpec) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for t in spec.tensors:
        row = out.setdefault(t.ggml_type, {"tensors": 0, "bytes": 0, "parameters": 0})
        row["tensors"] += 1
        row["bytes"] += t.nbytes
        row["parameters"] += t.n_elements
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["bytes"]))


# --------------------------------------------------------------------------------------------
# Text


def _size(n: int) -> str:
    """Bytes as GB (10^9) and GiB (2^30)."""
    if n < 10**6:
        return f"{n:,} B"
    return f"{n / 1e9:.2f} GB ({n / 2**30:.2f} GiB)" if n >= 10**8 else f"{n / 1e6:.2f} MB ({n / 2**20:.2f} MiB)"


def _count(n: int) -> str:
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit} ({n:,})"
    return f"{n:,}"


def _layer_kinds(spec: ModelSpec) -> str:
    counts = Counter(layer.kind for layer in spec.layers)
    return ", ".join(f"{n} × {kind}" for kind, n in counts.most_common())


def render_summary(spec: ModelSpec, console: Any, *, with_tensors: bool = False) -> None:
    """Print the readable summary (and the tensor table) to a rich Console."""
    from rich.markup import escape
    from rich.table import Table

    kv, recurrent = _memory_figures(spec)
    hp = spec.hparams
    info = Table(show_header=False, box=None, pad_edge=False)
    info.add_column(style="bold")
    info.add_column()
    rows: list[tuple[str, str]] = [
        ("model", escape(f"{spec.name}  ({spec.source})")),
        ("architecture", spec.architecture),
        ("file type", spec.ftype),
        ("parameters", _count(spec.parameters)),
        ("file size", _size(spec.file_bytes)),
        ("tensors", f"{len(spec.tensors):,}, {_size(spec.tensor_bytes)} of tensor data"),
        ("layers", f"{hp.n_layer}: {_layer_kinds(spec)}"),
        ("trained context", f"{hp.n_ctx_train:,} tokens"),
        ("vocabulary", f"{hp.n_vocab:,} tokens"),
    ]
    if hp.n_expert:
        rows.append(
            ("experts", f"{hp.n_expert} routed, {hp.n_expert_used} used per token, {hp.n_expert_shared} shared")
        )
    if hp.n_swa:
        rows.append(("sliding window", f"{hp.n_swa:,} tokens on {sum(hp.swa_layers)} of {hp.n_layer} layers"))
    if kv is not None:
        rows.append(("KV cache per token", f"{kv:,} bytes (f16 K and V)"))
    if recurrent is not None:
        rows.append(("recurrent state", f"{recurrent:,} bytes per sequence"))
    for label, value in rows:
        info.add_row(label, value if label == "model" else escape(value))
    console.print(info)

    types = Table(title="tensor types", title_justify="left")
    for col, justify in (
        ("type", "left"),
        ("tensors", "right"),
        ("parameters", "right"),
        ("bytes", "right"),
        ("share", "right"),
    ):
        types.add_column(col, justify=justify)  # type: ignore[arg-type]
    total = max(spec.tensor_bytes, 1)
    for name, row in _type_histogram(spec).items():
        types.add_row(
            name,
            f"{row['tensors']:,}",
            f"{row['parameters']:,}",
            f"{row['bytes']:,}",
            f"{100 * row['bytes'] / total:.1f}%",
        )
    console.print(types)

    if with_tensors:
        table = Table(title="tensors", title_justify="left")
        table.add_column("name", overflow="fold")
        for col in ("type", "shape", "bytes", "role"):
            table.add_column(col, justify="right" if col == "bytes" else "left", no_wrap=True)
        for t in spec.tensors:
            table.add_row(
                escape(t.name), t.ggml_type, " × ".join(str(d) for d in t.shape), f"{t.nbytes:,}", str(t.role)
            )
        console.print(table)
