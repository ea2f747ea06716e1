"""``servefit values`` and ``servefit deploy``: deployment files for one model, quantization and target.

``values`` prints the llama-server chart values of the plan (keyed by GPU class, so every provider
with the same GPUs shares the file); ``deploy`` writes values.yaml, helmfile.yaml.gotmpl,
compose.yaml and a README with the exact commands. A combination that does not fit writes nothing
and exits 1 with the plan's reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from servefit.errors import OptionsError

if TYPE_CHECKING:
    from servefit.plan import Plan

__all__ = ["register"]

SourceArg = Annotated[
    str, typer.Argument(help="catalog model id, GGUF path/URL, hf://..., owner/repo:QUANT or config.json path")
]
OnOpt = Annotated[str, typer.Option("--on", help="target hardware: 2xL4, scaleway/l4-2-24g, cpu, ...")]
QuantOpt = Annotated[str | None, typer.Option("--quant", help="quantization (Q4_K_M, ...) for catalog ids and configs")]
CtxOpt = Annotated[int | None, typer.Option("--ctx", "-c", help="context (-c); default: the largest that fits")]
ParallelOpt = Annotated[int, typer.Option("--parallel", "-np", help="parallel slots (-np)")]
CacheKOpt = Annotated[str, typer.Option("--cache-type-k", "-ctk", help="K cache type")]
CacheVOpt = Annotated[str, typer.Option("--cache-type-v", "-ctv", help="V cache type")]


def register(app: typer.Typer) -> None:
    app.command("values", help="Print the llama-server Helm values for a model on a target.")(values)
    app.command("deploy", help="Write values.yaml, helmfile, compose.yaml and a README for a model on a target.")(
        deploy
    )


def _plan(source: str, quant: str | None, on: str, ctx: int | None, parallel: int, ctk: str, ctv: str) -> Plan:
    from servefit.hardware import resolve_target
    from servefit.plan import Options
    from servefit.planner import make_plan
    from servefit.resolve import resolve_model, with_source_warnings

    if parallel < 1:
        raise OptionsError(f"--parallel must be at least 1, not {parallel}", option="parallel")
    if ctx is not None and ctx < 1:
        raise OptionsError(f"--ctx must be positive, not {ctx}", option="ctx")
    machine = resolve_target(on)
    spec = resolve_model(source, quant)
    options = Options(context=ctx, parallel=parallel, cache_type_k=ctk.lower(), cache_type_v=ctv.lower())
    return with_source_warnings(make_plan(spec, machine, options), spec)


def values(
    source: SourceArg,
    on: OnOpt,
    quant: QuantOpt = None,
    ctx: CtxOpt = None,
    parallel: ParallelOpt = 1,
    cache_type_k: CacheKOpt = "f16",
    cache_type_v: CacheVOpt = "f16",
) -> None:
    from servefit.render.values import render_values

    plan = _plan(source, quant, on, ctx, parallel, cache_type_k, cache_type_v)
    typer.echo(render_values(plan), nl=False)


def deploy(
    source: SourceArg,
    on: OnOpt,
    out: Annotated[Path, typer.Option("--out", help="folder to write the deployment files into")],
    quant: QuantOpt = None,
    ctx: CtxOpt = None,
    parallel: ParallelOpt = 1,
    cache_type_k: CacheKOpt = "f16",
    cache_type_v: CacheVOpt = "f16",
) -> None:
    import shlex

    from servefit.render.deploy import NVIDIA_PLAYBOOK, needs_nvidia_runtime, write_deploy

    plan = _plan(source, quant, on, ctx, parallel, cache_type_k, cache_type_v)
    written = write_deploy(plan, out)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo("")
    typer.echo("Kubernetes:")
    if needs_nvidia_runtime(plan):
        typer.echo(f"  ansible-playbook -i inventory.ini {NVIDIA_PLAYBOOK}")
        typer.echo(f"  kubectl apply -f {shlex.quote(str(out / 'manifests'))}")
    typer.echo(f"  cd {shlex.quote(str(out))} && helmfile --state-values-file values.yaml apply")
    typer.echo("One host:")
    typer.echo(f"  cd {shlex.quote(str(out))} && docker compose up -d")
