"""compose.yaml for one host (Docker Compose or Podman), with the plan's llama-server flags.

Two services, as in the chart: ``download`` runs llama.cpp's own downloader into a named volume
and exits; ``llama-server`` starts after it completes and serves offline. GPUs are reserved the
Compose way (``deploy.resources.reservations.devices``; Podman maps the NVIDIA request to CDI),
AMD and Vulkan devices are passed as device nodes.
"""

from __future__ import annotations

from typing import Any

import yaml

from servefit.errors import RenderError
from servefit.plan import MIB, Plan
from servefit.render.values import (
    SERVER_PORT,
    backend_image,
    chart_values,
    hf_reference,
    image_reference,
    memory_request_bytes,
    release_name,
    startup_failure_threshold,
    template_environment,
)

__all__ = ["compose_data", "render_compose", "server_command"]

_HARDENING: dict[str, Any] = {
    "read_only": True,
    "tmpfs": ["/tmp"],
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
}


def server_command(plan: Plan) -> list[str]:
    """llama-server arguments of the compose service: the chart's owned flags, then the plan's."""
    values = chart_values(plan)
    return [
        "-hf",
        hf_reference(plan),
        "--offline",
        "--host",
        "0.0.0.0",
        "--port",
        str(SERVER_PORT),
        "--metrics",
        *values["server"]["args"],
    ]


def _devices(plan: Plan, gpu_count: int) -> dict[str, Any]:
    backend = backend_image(plan.backend).backend
    if gpu_count == 0 or backend == "cpu":
        return {}
    if backend in ("cuda12", "cuda13"):
        return {
            "deploy": {
                "resources": {
                    "reservations": {
                        "devices": [{"driver": "nvidia", "count": gpu_count, "capabilities": ["gpu"]}],
                    }
                }
            }
        }
    if backend == "rocm":
        return {"devices": ["/dev/kfd", "/dev/dri"], "group_add": ["video"]}
    return {"devices": ["/dev/dri"], "group_add": ["video"]}


def compose_data(plan: Plan) -> dict[str, Any]:
    """The compose mapping that :func:`render_compose` writes."""
    values = chart_values(plan)
    image = image_reference(plan.backend)
    memory_mib = memory_request_bytes(plan) // MIB
    start_period_s = startup_failure_threshold(plan) * 10
    download: dict[str, Any] = {
        "image": image,
        "entrypoint": ["/app/llama", "download"],
        "command": ["-hf", hf_reference(plan)],
        "environment": {"LLAMA_CACHE": "/models", "HOME": "/tmp", "HF_TOKEN": "${HF_TOKEN:-}"},
        "volumes": ["models:/models"],
        "restart": "no",
        **_HARDENING,
    }
    server: dict[str, Any] = {
        "image": image,
        "entrypoint": ["/app/llama-server"],
        "command": server_command(plan),
        "environment": {"LLAMA_CACHE": "/models", "HOME": "/tmp", "LLAMA_API_KEY": "${LLAMA_API_KEY:-}"},
        "volumes": ["models:/models"],
        "ports": [f"127.0.0.1:{SERVER_PORT}:{SERVER_PORT}"],
        "depends_on": {"download": {"condition": "service_completed_successfully"}},
        "restart": "unless-stopped",
        "healthcheck": {
            "test": ["CMD", "curl", "--fail", "--silent", f"http://127.0.0.1:{SERVER_PORT}/health"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": f"{start_period_s}s",
        },
        "mem_reservation": f"{memory_mib}m",
        **_HARDENING,
        **_devices(plan, int(values["gpu"]["count"])),
    }
    return {
        "name": release_name(plan),
        "services": {"download": download, "llama-server": server},
        "volumes": {"models": {}},
    }


def render_compose(plan: Plan) -> str:
    """compose.yaml text for one host."""
    data = compose_data(plan)
    text = (
        template_environment()
        .get_template("compose.yaml.j2")
        .render(plan=plan, compose=data, image=image_reference(plan.backend), hf_ref=hf_reference(plan))
    )
    if yaml.safe_load(text) != data:
        raise RenderError(f"compose for {plan.model_id} {plan.quant}: template output does not match the plan")
    return text
