"""Helm values for the llama-server chart, read from one Plan.

The values carry the plan's ``llama-server`` flags unchanged (``server.args``); the chart adds
the flags it owns itself (the model source ``-hf REPO:QUANT``, ``--offline``, ``--host``,
``--port``, ``--metrics`` and the API key file). Everything else here is read from the plan
(backend, GPU class, devices, host RAM, model size) or is a deployment policy named below:

* memory request = the plan's host RAM + ``max(MEMORY_HEADROOM_MIN_BYTES, MEMORY_HEADROOM_FRACTION
  of it)``; the limit equals the request, so the scheduler reserves what llama.cpp will use;
* cache volume = the GGUF bytes + ``CACHE_HEADROOM_FRACTION`` + ``CACHE_HEADROOM_MIN_BYTES``,
  in whole GiB;
* startup probe budget = ``LOAD_BASE_S`` + the GGUF read at ``LOAD_READ_BYTES_S``;
* helm wait timeout = ``WAIT_BASE_S`` + the GGUF downloaded at ``DOWNLOAD_BYTES_S`` + the load.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from servefit.errors import RenderError
from servefit.plan import GIB, MIB, Plan, Strategy

__all__ = [
    "CHART_OWNED_FLAGS",
    "IMAGE_REPOSITORY",
    "LLAMA_CPP_BUILD",
    "LLAMA_CPP_COMMIT",
    "BackendImage",
    "backend_image",
    "chart_values",
    "check_deployable",
    "hf_reference",
    "image_reference",
    "release_name",
    "render_values",
    "server_args",
    "values_filename",
]

# llama.cpp of reference: the commit vendored by llama-cpp-python 0.3.36, released as build b11312
# (see docs/deploy.md for how the build number was found).
LLAMA_CPP_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
LLAMA_CPP_BUILD = "b11312"
IMAGE_REPOSITORY = "ghcr.io/ggml-org/llama.cpp"

MEMORY_HEADROOM_FRACTION = 0.10
MEMORY_HEADROOM_MIN_BYTES = 1 * GIB
CACHE_HEADROOM_FRACTION = 0.10
CACHE_HEADROOM_MIN_BYTES = 1 * GIB
LOAD_BASE_S = 600
LOAD_READ_BYTES_S = 100_000_000  # a slow network volume
DOWNLOAD_BYTES_S = 50_000_000
WAIT_BASE_S = 900
PROBE_PERIOD_S = 10
SERVER_PORT = 8080
DEFAULT_NAMESPACE = "llm"

# Flags the chart (and compose file) set themselves: the plan's copies are left out of server.args.
_OWNED_WITH_VALUE = frozenset(
    {
        "-m",
        "--model",
        "-hf",
        "-hfr",
        "--hf-repo",
        "-hff",
        "--hf-file",
        "-mu",
        "--model-url",
        "--host",
        "--port",
        "--api-key",
        "--api-key-file",
        "-hft",
        "--hf-token",
    }
)
_OWNED_SWITCHES = frozenset({"--metrics", "--offline"})
CHART_OWNED_FLAGS = _OWNED_WITH_VALUE | _OWNED_SWITCHES


@dataclass(frozen=True, slots=True)
class BackendImage:
    """How one llama.cpp backend runs in a container."""

    backend: str
    tag_variant: str  # server{variant}-bNNNN
    gpu_resource: str  # extended resource of the device plugin ("" for CPU)
    runtime_class: str  # RuntimeClass name ("" when the default runtime will do)


_BACKENDS: dict[str, BackendImage] = {
    row.backend: row
    for row in (
        BackendImage("cpu", "", "", ""),
        BackendImage("cuda12", "-cuda", "nvidia.com/gpu", "nvidia"),
        BackendImage("cuda13", "-cuda13", "nvidia.com/gpu", "nvidia"),
        BackendImage("rocm", "-rocm", "amd.com/gpu", ""),
        BackendImage("vulkan", "-vulkan", "", ""),
    )
}

_VULKAN_RESOURCES = (("nvidia", "nvidia.com/gpu"), ("amd", "amd.com/gpu"), ("radeon", "amd.com/gpu"))
_VULKAN_DEFAULT_RESOURCE = "gpu.intel.com/i915"


def backend_image(backend: str) -> BackendImage:
    """The image row of a backend; Metal (macOS only) and unknown backends have none."""
    try:
        return _BACKENDS[backend]
    except KeyError:
        if backend == "metal":
            raise RenderError(
                "backend 'metal' has no container image: Apple GPUs are not reachable from containers; "
                "run llama-server natively with the plan's flags"
            ) from None
        known = ", ".join(sorted(_BACKENDS))
        raise RenderError(f"backend {backend!r} has no llama.cpp server image (known: {known})") from None


def image_reference(backend: str, build: str = LLAMA_CPP_BUILD) -> str:
    """``ghcr.io/ggml-org/llama.cpp:server-cuda-b11312`` and friends."""
    return f"{IMAGE_REPOSITORY}:server{backend_image(backend).tag_variant}-{build}"


def check_deployable(plan: Plan) -> None:
    """Raise :class:`RenderError` when the plan cannot be deployed (it does not fit, has no
    container image, names no GGUF repository); what :func:`chart_values` checks first."""
    if not plan.fits:
        why = "; ".join(plan.reasons) if plan.reasons else "no placement fits"
        raise RenderError(f"{plan.model_id} {plan.quant} does not fit on {plan.target_id}: {why}")
    backend_image(plan.backend)
    if not plan.gguf_repo:
        raise RenderError(
            f"plan for {plan.model_id} {plan.quant} names no Hugging Face GGUF repository to download from"
        )


def hf_reference(plan: Plan) -> str:
    """The ``-hf`` argument: ``owner/repo:QUANT``."""
    return f"{plan.gguf_repo}:{plan.quant}" if plan.quant else plan.gguf_repo


def server_args(plan: Plan) -> list[str]:
    """The plan's llama-server flags, less those the chart owns (model source, listen address, keys)."""
    out: list[str] = []
    args = list(plan.llama_server_args)
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in _OWNED_SWITCHES:
            i += 1
        elif name in _OWNED_WITH_VALUE:
            i += 1 if "=" in arg else 2
        else:
            out.append(arg)
            i += 1
    return out


def _slug(text: str, max_len: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "model"


def release_name(plan: Plan) -> str:
    """Helm release name from the model id (DNS label, at most 53 characters)."""
    return _slug(plan.model_id or plan.model_name, 53)


def values_filename(plan: Plan) -> str:
    """Values are keyed by GPU class (``nvidia-l4-48gb.yaml``); CPU-only targets share ``cpu.yaml``."""
    key = plan.gpu_class if plan.gpu_class and plan.backend != "cpu" else "cpu"
    return f"{_slug(key, 100)}.yaml"


def _gpu_devices(plan: Plan) -> list[str]:
    return [d.name for d in plan.devices if d.kind == "gpu"]


def _product_name(device_name: str) -> str:
    """``CUDA0 (NVIDIA L4)`` -> ``NVIDIA L4``."""
    match = re.search(r"\(([^()]+)\)\s*$", device_name)
    return (match.group(1) if match else device_name).strip()


def _gpu_resource(plan: Plan, row: BackendImage, gpus: list[str]) -> str:
    if row.gpu_resource:
        return row.gpu_resource
    if row.backend == "vulkan":
        names = " ".join(gpus).lower()
        for needle, resource in _VULKAN_RESOURCES:
            if needle in names:
                return resource
        return _VULKAN_DEFAULT_RESOURCE
    return "nvidia.com/gpu"


def _node_selector(row: BackendImage, gpus: list[str]) -> dict[str, str]:
    """GPU Feature Discovery labels NVIDIA nodes ``nvidia.com/gpu.product=<name with dashes>``."""
    if row.gpu_resource != "nvidia.com/gpu" or not gpus:
        return {}
    products = {_product_name(name) for name in gpus}
    if len(products) != 1:
        return {}
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", products.pop()).strip("-._")[:63]
    return {"nvidia.com/gpu.product": label} if label else {}


def _mib_ceil(n_bytes: int) -> int:
    return -(-n_bytes // MIB)


def memory_request_bytes(plan: Plan) -> int:
    """The plan's host RAM plus the headroom policy, rounded up to MiB."""
    headroom = max(MEMORY_HEADROOM_MIN_BYTES, math.ceil(plan.ram_required_bytes * MEMORY_HEADROOM_FRACTION))
    return _mib_ceil(plan.ram_required_bytes + headroom) * MIB


def cache_volume_gib(plan: Plan) -> int:
    """Cache volume size in whole GiB: the GGUF files plus headroom."""
    needed = plan.model_bytes + max(CACHE_HEADROOM_MIN_BYTES, math.ceil(plan.model_bytes * CACHE_HEADROOM_FRACTION))
    return max(1, -(-needed // GIB))


def startup_failure_threshold(plan: Plan) -> int:
    """Probe periods the startup probe allows for loading the model (download happens before, in init)."""
    load_s = LOAD_BASE_S + plan.model_bytes // LOAD_READ_BYTES_S
    return max(1, -(-load_s // PROBE_PERIOD_S))


def wait_timeout_seconds(plan: Plan) -> int:
    """``helm --wait`` budget for download plus load, in whole minutes."""
    total = WAIT_BASE_S + plan.model_bytes // DOWNLOAD_BYTES_S + startup_failure_threshold(plan) * PROBE_PERIOD_S
    return -(-total // 60) * 60


def _cpu_request(plan: Plan) -> str:
    """Cores reserved: GPU-only plans need little; plans that compute on the host need more."""
    return "2" if plan.strategy == Strategy.GPU else "4"


def chart_values(plan: Plan) -> dict[str, Any]:
    """The values mapping for the llama-server chart (what :func:`render_values` writes)."""
    check_deployable(plan)
    row = backend_image(plan.backend)
    gpus = _gpu_devices(plan) if row.backend != "cpu" else []
    resource = _gpu_resource(plan, row, gpus)
    memory = f"{memory_request_bytes(plan) // MIB}Mi"
    values: dict[str, Any] = {
        "release": {
            "name": release_name(plan),
            "namespace": DEFAULT_NAMESPACE,
            "timeoutSeconds": wait_timeout_seconds(plan),
        },
        "servefit": {
            "model": plan.model_id,
            "target": plan.target_id,
            "gpuClass": plan.gpu_class,
            "strategy": str(plan.strategy) if plan.strategy is not None else "",
        },
        "model": {
            "hfRepo": plan.gguf_repo,
            "quant": plan.quant,
            "download": True,
        },
        "backend": row.backend,
        "image": {"repository": IMAGE_REPOSITORY, "build": LLAMA_CPP_BUILD},
        "server": {
            "host": "0.0.0.0",
            "port": SERVER_PORT,
            "metrics": True,
            "args": server_args(plan),
        },
        "gpu": {"count": len(gpus), "resource": resource},
        "runtimeClassName": row.runtime_class if gpus else "",
        "nodeSelector": _node_selector(row, gpus),
        # GPU node pools are commonly tainted with the device plugin's resource name.
        "tolerations": [{"key": resource, "operator": "Exists", "effect": "NoSchedule"}] if gpus else [],
        "resources": {
            "requests": {"cpu": _cpu_request(plan), "memory": memory},
            "limits": {"memory": memory},
        },
        "persistence": {"enabled": True, "size": f"{cache_volume_gib(plan)}Gi", "keep": True},
        "probes": {
            "startup": {
                "periodSeconds": PROBE_PERIOD_S,
                "timeoutSeconds": 5,
                "failureThreshold": startup_failure_threshold(plan),
            },
            "readiness": {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
            "liveness": {"periodSeconds": 20, "timeoutSeconds": 10, "failureThreshold": 6},
        },
    }
    return values


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.1f} GiB"


def _comment(text: str) -> str:
    return " ".join(str(text).split())


# libyaml's emitter and parser when PyYAML was built with them: the same text as the pure-Python
# ones for the block mappings written here (top-level scalars, which the Python emitter ends with
# ``...``, are never dumped), at a fraction of the time.
_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Loader):  # type: ignore[misc]
    """Safe loader that refuses a mapping with a key twice (YAML lets the last one win silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [(key.tag, key.value) for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
        if len(keys) != len(set(keys)):
            raise yaml.constructor.ConstructorError(None, None, "duplicate key", node.start_mark)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


class _PlainDumper(_BaseDumper):  # type: ignore[misc]
    """Safe dumper that writes shared objects out in full (no YAML anchors and aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(value: Any) -> str:
    text: str = yaml.dump(
        value, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
    return text.rstrip()


@dataclass(frozen=True, slots=True)
class _Section:
    """One top-level key of the values as YAML text, checked to read back as its value."""

    text: str
    lines: tuple[str, ...]
    plain: bool  # no blank or ``#`` line inside: comment lines around it can be told apart by sight


_SECTION_CACHE_MAX = 4096
_sections: dict[str, _Section] = {}


def _section(key: str, value: Any) -> _Section:
    """YAML text of ``{key: value}``, cached by the value's repr: most sections (image, GPUs, probes,
    resources, model) are shared by many plans. A new text is read back once and must give the value."""
    mapping = {key: value}
    cache_key = repr(mapping)  # distinguishes True from 1 and "1" from 1, unlike ==
    found = _sections.get(cache_key)
    if found is None:
        text = _dump(mapping)
        if yaml.load(text, Loader=_Loader) != mapping:
            raise RenderError(f"values key {key!r} does not read back as written")
        lines = tuple(text.split("\n"))
        found = _Section(text, lines, all(line and not line.startswith("#") for line in lines))
        if len(_sections) >= _SECTION_CACHE_MAX:
            _sections.clear()
        _sections[cache_key] = found
    return found


def _to_yaml(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        ((key, item),) = value.items()
        return _section(str(key), item).text
    return _dump(value)


@functools.cache  # compiled templates are reused across renders
def template_environment() -> jinja2.Environment:
    """Jinja environment of the deployment templates: StrictUndefined, no HTML escaping."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["to_yaml"] = _to_yaml
    env.filters["comment"] = _comment
    env.filters["gib"] = _gib
    return env


def render_values(plan: Plan) -> str:
    """values.yaml text for the llama-server chart: the plan's flags, image, GPUs, memory, probes."""
    values = chart_values(plan)
    text = (
        template_environment()
        .get_template("values.yaml.j2")
        .render(
            plan=plan,
            values=values,
            image=image_reference(plan.backend),
            hf_ref=hf_reference(plan),
            filename=values_filename(plan),
            memory_request_bytes=memory_request_bytes(plan),
        )
    )
    if not _data_agrees(text, values):  # the comments must never change the data
        raise RenderError(f"values for {plan.model_id} {plan.quant}: template output does not match the plan")
    return text


def _data_agrees(text: str, values: dict[str, Any]) -> bool:
    """Whether ``text`` holds exactly ``values``: every line is a ``#`` comment, blank, or the next
    line of the sections of ``values`` in order (each section read back when first dumped). A data
    line anywhere else, even one that a later key would override, is refused. Sections that hold a
    blank or ``#`` line of their own (a multi-line string) cannot be told from comments by sight;
    then the text is parsed in full."""
    sections = [_section(str(key), item) for key, item in values.items()]
    if all(section.plain for section in sections):
        data = [line for line in text.split("\n") if line and not line.startswith("#")]
        return data == [line for section in sections for line in section.lines]
    try:
        return bool(yaml.load(text, Loader=_StrictLoader) == values)
    except yaml.YAMLError:
        return False
