"""``servefit hardware [QUERY] [--provider P] [--json]`` and ``servefit hardware show ID [--json]``.

Click parses a group's optional argument before its subcommands, so this is one command whose
first word may be ``show``: ``servefit hardware show scaleway/l4-2-24g`` shows a target or a GPU,
anything else is a search query.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from servefit.hardware import Gpu
    from servefit.machine import Machine

__all__ = ["gpu_json", "machine_json", "register"]

GIB = 1 << 30


def register(app: typer.Typer) -> None:
    app.command(
        "hardware",
        help=(
            "List the hardware catalog (GPUs, cloud instances, GPU classes, workstations), filtered by "
            "QUERY words and --provider; 'hardware show ID' shows one target or GPU."
        ),
    )(hardware)


def hardware(
    words: Annotated[
        list[str] | None,
        typer.Argument(metavar="[QUERY]... | show ID", help="search words, or 'show' and a target or GPU id"),
    ] = None,
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="only this cloud provider")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    from servefit.errors import OptionsError

    args = list(words or [])
    if args and args[0] == "show":
        if len(args) != 2:
            raise OptionsError("usage: servefit hardware show ID [--json]", option="show")
        _show(args[1], as_json=as_json)
        return
    _list(args, provider=provider, as_json=as_json)


def gpu_json(gpu: Gpu) -> dict[str, Any]:
    """The JSON object of a GPU (``servefit hardware --json``)."""
    from servefit.hardware import backend_for

    return {
        "id": gpu.id,
        "name": gpu.name,
        "vendor": gpu.vendor,
        "architecture": gpu.architecture,
        "memory_bytes": gpu.memory_bytes,
        "memory_gib": gpu.memory_gib,
        "bandwidth_gb_s": gpu.bandwidth_gb_s,
        "fp16_tflops": gpu.fp16_tflops,
        "int8_tops": gpu.int8_tops,
        "compute_capability": gpu.compute_capability,
        "gfx_target": gpu.gfx_target,
        "interconnect": gpu.interconnect,
        "pcie_gb_s": gpu.pcie_gb_s,
        "unified_memory": gpu.unified_memory,
        "backend": backend_for(gpu).value,
        "source": gpu.source,
        "notes": gpu.notes,
    }


def machine_json(machine: Machine) -> dict[str, Any]:
    """The JSON object of a target (``servefit hardware --json`` and ``hardware show ID --json``)."""
    from servefit.hardware import target_kind

    return {
        "id": machine.id,
        "kind": target_kind(machine.id),
        "provider": machine.provider,
        "name": machine.name,
        "gpu": machine.devices[0].gpu_id if machine.devices else None,
        "gpu_count": machine.gpu_count,
        "gpu_class": machine.gpu_class,
        "vram_bytes": machine.vram_bytes,
        "ram_bytes": machine.host_ram_bytes,
        "vcpus": machine.cpu_cores,
        "backend": machine.backend.value,
        "unified_memory": machine.unified_memory,
        "ram_bandwidth_gb_s": machine.ram_bandwidth_gb_s,
        "disk_read_gb_s": machine.disk_read_gb_s,
        "price_per_hour": machine.price_per_hour,
        "currency": machine.currency,
        "price_date": machine.price_date,
        "devices": [
            {
                "name": d.name,
                "gpu_id": d.gpu_id,
                "memory_bytes": d.memory_bytes,
                "bandwidth_gb_s": d.bandwidth_gb_s,
                "fp16_tflops": d.fp16_tflops,
                "int8_tops": d.int8_tops,
                "compute_capability": d.compute_capability,
                "pcie_gb_s": d.pcie_gb_s,
            }
            for d in machine.devices
        ],
        "source": machine.source,
    }


def _matches(words: list[str], *fields: str) -> bool:
    text = " ".join(fields).lower()
    return all(word.lower() in text for word in words)


def _list(words: list[str], *, provider: str | None, as_json: bool) -> None:
    from servefit.hardware import list_gpus, list_targets

    machines = [
        m
        for m in list_targets()
        if (provider is None or m.provider.lower() == provider.lower())
        and _matches(words, m.id, m.name, m.provider, m.gpu_class, *(d.name for d in m.devices[:1]))
    ]
    gpus = [] if provider else [g for g in list_gpus() if _matches(words, g.id, g.name, g.vendor, *g.aliases)]
    if provider and not machines:
        from servefit.errors import UnknownHardwareError

        providers = sorted({m.provider for m in list_targets() if m.provider})
        raise UnknownHardwareError(provider, [p for p in providers if provider.lower() in p.lower()] or providers[:3])
    if as_json:
        payload = {"gpus": [gpu_json(g) for g in gpus], "machines": [machine_json(m) for m in machines]}
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_tables(gpus, machines)


def _money(machine: Machine) -> str:
    if machine.price_per_hour is None:
        return "-"
    return f"{machine.price_per_hour:.2f} {machine.currency}/h"


def _print_tables(gpus: list[Gpu], machines: list[Machine]) -> None:
    from rich.console import Console
    from rich.table import Table

    from servefit.hardware import backend_for, target_kind

    console = Console()
    if gpus:
        table = Table(title=f"GPUs ({len(gpus)})")
        for column in ("id", "name", "memory (GiB)", "bandwidth (GB/s)", "FP16 TFLOPS", "CC/gfx", "backend"):
            table.add_column(column)
        for g in gpus:
            table.add_row(
                g.id,
                g.name,
                f"{g.memory_bytes / GIB:.1f}",
                f"{g.bandwidth_gb_s:g}",
                f"{g.fp16_tflops:g}",
                g.compute_capability or g.gfx_target or "-",
                backend_for(g).value,
            )
        console.print(table)
    if machines:
        table = Table(title=f"Targets ({len(machines)})")
        for column in ("id", "kind", "GPUs", "VRAM (GiB)", "RAM (GiB)", "vCPUs", "price", "backend"):
            table.add_column(column)
        for m in machines:
            gpu_text = f"{m.gpu_count}x {m.devices[0].name}" if m.devices else "-"
            table.add_row(
                m.id,
                target_kind(m.id),
                gpu_text,
                f"{m.vram_bytes / GIB:.1f}",
                f"{m.host_ram_bytes / GIB:.1f}",
                str(m.cpu_cores),
                _money(m),
                m.backend.value,
            )
        console.print(table)
    if not gpus and not machines:
        console.print("no hardware matches")


def _show(ident: str, *, as_json: bool) -> None:
    from servefit.hardware import find_gpu, resolve_target

    gpu = find_gpu(ident) if ident.strip().lower() not in ("cpu", "local") else None
    use_gpu = gpu is not None and "/" not in ident
    payload = gpu_json(gpu) if use_gpu and gpu is not None else machine_json(resolve_target(ident))
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, title=str(payload["id"]))
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key, value in payload.items():
        if key == "devices":
            value = ", ".join(f"{d['name']} ({d['memory_bytes'] / GIB:.1f} GiB)" for d in value) or "-"
        elif key.endswith("_bytes") and isinstance(value, int):
            value = f"{value} ({value / GIB:.1f} GiB)"
        table.add_row(key, "-" if value in (None, "") else str(value))
    Console().print(table)
