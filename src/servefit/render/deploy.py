"""A deployment folder from one Plan: values.yaml, helmfile.yaml.gotmpl, compose.yaml, README.md.

A plan that does not fit writes nothing: :func:`write_deploy` raises ``RenderError`` with the
plan's reasons before it touches the disk.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from servefit.errors import RenderError
from servefit.plan import Plan
from servefit.render.compose import render_compose, server_command
from servefit.render.values import (
    LLAMA_CPP_BUILD,
    chart_values,
    check_deployable,
    hf_reference,
    image_reference,
    render_values,
)

__all__ = [
    "NVIDIA_PLAYBOOK",
    "chart_source",
    "deploy_commands",
    "helmfile_template",
    "manifests_source",
    "needs_nvidia_runtime",
    "write_deploy",
]

NVIDIA_PLAYBOOK = "servefit.infra.nvidia_container_toolkit"
_TEMPLATES = Path(__file__).with_name("templates")
_CHART_NAME = "llama-server"


def helmfile_template() -> str:
    """The helmfile.yaml.gotmpl shipped with servefit (the same file as the repository's)."""
    return (_TEMPLATES / "helmfile.yaml.gotmpl").read_text(encoding="utf-8")


def chart_source() -> Path | None:
    """The llama-server chart of this servefit checkout, or None when servefit runs from a wheel."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "charts" / _CHART_NAME
        if (candidate / "Chart.yaml").is_file():
            return candidate
    return None


def manifests_source() -> Path | None:
    """deploy/manifests (RuntimeClass, NVIDIA device plugin) of this servefit checkout, if any."""
    chart = chart_source()
    if chart is None:
        return None
    manifests = chart.parents[1] / "deploy" / "manifests"
    return manifests if manifests.is_dir() else None


def needs_nvidia_runtime(plan: Plan) -> bool:
    """Whether the plan runs on NVIDIA GPUs through the NVIDIA container runtime (node preparation needed)."""
    return plan.backend in ("cuda12", "cuda13") and any(d.kind == "gpu" for d in plan.devices)


def deploy_commands(plan: Plan, values_url: str) -> list[str]:
    """Shell commands that deploy the plan: the node preparation (NVIDIA), then the helmfile one-liner."""
    check_deployable(plan)  # a plan that cannot be deployed raises here
    commands: list[str] = []
    if needs_nvidia_runtime(plan):
        commands.append(f"ansible-playbook -i inventory.ini {NVIDIA_PLAYBOOK}")
    commands.append(f"helmfile --state-values-file <(curl -fsSL {shlex.quote(values_url)}) apply")
    return commands


def _readme(plan: Plan, values_name: str, chart_copied: bool) -> str:
    from servefit.render.values import template_environment

    values = chart_values(plan)
    return (
        template_environment()
        .get_template("README.md.j2")
        .render(
            plan=plan,
            values=values,
            values_name=values_name,
            image=image_reference(plan.backend),
            hf_ref=hf_reference(plan),
            build=LLAMA_CPP_BUILD,
            nvidia=needs_nvidia_runtime(plan),
            playbook=NVIDIA_PLAYBOOK,
            chart_copied=chart_copied,
            server_command=shlex.join(["llama-server", *server_command(plan)]),
        )
    )


def write_deploy(plan: Plan, out_dir: Path) -> list[Path]:
    """Write values.yaml, helmfile.yaml.gotmpl, compose.yaml, README.md (and the chart) into out_dir.

    Everything is rendered before anything is written, so a plan that cannot be deployed (it does
    not fit, needs Metal, names no GGUF repository) leaves no files behind.
    """
    values_text = render_values(plan)
    compose_text = render_compose(plan)
    helmfile_text = helmfile_template()
    chart = chart_source()
    readme_text = _readme(plan, "values.yaml", chart is not None)
    out_dir = Path(out_dir)
    files = {
        "values.yaml": values_text,
        "helmfile.yaml.gotmpl": helmfile_text,
        "compose.yaml": compose_text,
        "README.md": readme_text,
    }
    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = out_dir / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
        if chart is not None:
            target = out_dir / "charts" / _CHART_NAME
            shutil.copytree(chart, target, dirs_exist_ok=True)
            written.append(target)
        manifests = manifests_source()
        if manifests is not None and needs_nvidia_runtime(plan):
            target = out_dir / "manifests"
            shutil.copytree(manifests, target, dirs_exist_ok=True)
            written.append(target)
    except OSError as exc:
        raise RenderError(f"{out_dir}: cannot write deployment files: {exc.strerror or exc}") from exc
    return written
