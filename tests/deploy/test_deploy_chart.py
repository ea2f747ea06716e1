"""The llama-server chart rendered by Helm's own engine for every generated values file.

Each plan's values.yaml is checked against values.schema.json (jsonschema), rendered with
helm-python-sdk (Helm's Go engine, offline: the same code path as ``helm template``), every
manifest validated by kubernetes-validate in strict mode for two Kubernetes versions, and the
Deployment compared with the plan: flags, image, GPUs, memory, runtime class, probes, security.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_helpers import CHART, DATA, KUBERNETES_VERSIONS, by_kind, manifests
from deploy_plans import all_cases

from servefit.plan import Plan, Strategy
from servefit.render.values import CHART_OWNED_FLAGS, LLAMA_CPP_BUILD, render_values, values_filename

CASES = all_cases()
IMAGE_VARIANT = {"cpu": "server", "cuda12": "server-cuda", "cuda13": "server-cuda13", "rocm": "server-rocm"}
QUANTITY_FACTORS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _bytes(quantity: str) -> int:
    for suffix, factor in QUANTITY_FACTORS.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _flag_value(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg in names:
            return args[i + 1]
    return None


def _without_owned(args: list[str]) -> list[str]:
    """The plan's flags less model source, listen address and metrics (written independently of the renderer)."""
    out: list[str] = []
    skip = 0
    for arg in args:
        if skip:
            skip -= 1
        elif arg in ("-hf", "--host", "--port"):
            skip = 1
        elif arg != "--metrics":
            out.append(arg)
    return out


def _render(chart: Any, values: dict[str, Any], name: str = "demo") -> list[dict[str, Any]]:
    return manifests(chart.render(values=values, name=name, namespace="llm"))


def test_enough_varied_cases() -> None:
    assert len(CASES) >= 50
    assert {p.backend for p in CASES} == {"cpu", "cuda12", "cuda13", "rocm", "vulkan"}
    assert {p.strategy for p in CASES} == set(Strategy)
    assert any(p.n_cpu_moe and "-ot" in p.llama_server_args for p in CASES)
    assert any(p.n_cpu_moe and "--n-cpu-moe" in p.llama_server_args for p in CASES)
    assert any(sum(d.kind == "gpu" for d in p.devices) == 8 for p in CASES)


def test_chart_lints_clean_in_strict_mode() -> None:
    helm = pytest.importorskip("helm_python")
    for version in KUBERNETES_VERSIONS:
        report = helm.lint(str(CHART), strict=True, kube_version=f"v{version}")
        assert report["errors"] == [] and report["messages"] == [], report


@pytest.mark.parametrize("plan", CASES, ids=[f"{p.model_id}@{p.target_id}" for p in CASES])
def test_values_render_and_validate(plan: Plan, chart: Any, values_schema: dict[str, Any]) -> None:
    helm = pytest.importorskip("helm_python")
    text = render_values(plan)
    values = yaml.safe_load(text)
    jsonschema.validate(values, values_schema)
    chart.validate_schema(values)  # Helm's own schema check, as install does
    report = helm.lint(str(CHART), values, strict=True)
    assert report["errors"] == [] and report["messages"] == [], report

    objects = _render(chart, values, name=values["release"]["name"])
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)

    (deployment,) = by_kind(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    (server,) = pod["containers"]
    (download,) = pod["initContainers"]

    # the plan's flags, in order, after the flags the chart owns
    plan_args = list(plan.llama_server_args)
    passed = [a for a in server["args"] if a]
    owned = passed[: len(passed) - len(values["server"]["args"])]
    assert passed[len(owned) :] == values["server"]["args"]
    assert values["server"]["args"] == _without_owned(plan_args)  # every plan flag, in order
    for flag in (
        "-c",
        "-np",
        "-ngl",
        "-fa",
        "-ctk",
        "-ctv",
        "-sm",
        "-ts",
        "--n-cpu-moe",
        "-ot",
        "--cache-ram",
        "--load-mode",
    ):
        assert _flag_value(passed, flag) == _flag_value(plan_args, flag), flag
    assert not (set(values["server"]["args"]) & CHART_OWNED_FLAGS)
    hf_ref = f"{plan.gguf_repo}:{plan.quant}"
    assert owned[:2] == ["-hf", hf_ref] and "--offline" in owned and "--metrics" in owned
    assert _flag_value(owned, "--host") == "0.0.0.0" and _flag_value(owned, "--port") == "8080"
    assert download["command"] == ["/app/llama", "download"] and download["args"] == ["-hf", hf_ref]

    # image chosen by backend, pinned to the build
    variant = IMAGE_VARIANT.get(plan.backend, "server-vulkan")
    assert server["image"] == f"ghcr.io/ggml-org/llama.cpp:{variant}-{LLAMA_CPP_BUILD}" == download["image"]

    # GPUs, runtime, node placement
    gpus = sum(d.kind == "gpu" for d in plan.devices) if plan.backend != "cpu" else 0
    limits = server["resources"]["limits"]
    gpu_limits = {k: v for k, v in limits.items() if k not in ("memory", "cpu")}
    if gpus:
        assert list(gpu_limits.values()) == [gpus]
        assert pod["tolerations"][0]["key"] == next(iter(gpu_limits))
    else:
        assert gpu_limits == {}
    if plan.backend.startswith("cuda"):
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["nodeSelector"]["nvidia.com/gpu.product"].startswith("NVIDIA-")
        assert gpu_limits == {"nvidia.com/gpu": gpus}
    else:
        assert "runtimeClassName" not in pod

    # memory request covers the plan's host RAM with headroom; limit equals request
    requests = server["resources"]["requests"]
    assert _bytes(requests["memory"]) >= plan.ram_required_bytes + 2**30
    assert limits["memory"] == requests["memory"]

    # probes on /health, startup budget at least ten minutes
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == "/health"
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600

    # restrictive security context
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in (server, download):
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert ctx["readOnlyRootFilesystem"] is True

    # the model cache outlives uninstall and holds the model
    (pvc,) = by_kind(objects, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert _bytes(pvc["spec"]["resources"]["requests"]["storage"]) > plan.model_bytes
    assert {o["kind"] for o in objects} == {"Deployment", "Service", "PersistentVolumeClaim", "ServiceAccount", "Pod"}


def test_values_filename_is_the_gpu_class() -> None:
    names = {values_filename(p) for p in CASES}
    assert "cpu.yaml" in names and "nvidia-l4-48gb.yaml" in names
    for p in CASES:
        assert values_filename(p) == ("cpu.yaml" if p.backend == "cpu" else f"{p.gpu_class}.yaml")


OPTIONAL = {
    "ingress": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"hosts": ["llm.example.org"], "secretName": "t"}],
            "hosts": [{"host": "llm.example.org", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        }
    },
    "api-key": {"apiKey": {"enabled": True}},
    "existing-api-key": {"apiKey": {"enabled": True, "existingSecret": "mine", "secretKey": "k"}},
    "hpa": {
        "autoscaling": {"enabled": True, "engine": "hpa", "maxReplicas": 3},
        "persistence": {"accessModes": ["ReadWriteMany"]},
    },
    "no-persistence": {"persistence": {"enabled": False}},
    "hf-token": {"model": {"hfTokenSecret": {"name": "hf", "key": "token"}}},
    "no-download": {"model": {"download": False, "hfTokenSecret": {"name": "hf", "key": "token"}}},
}


@pytest.mark.parametrize("feature", sorted(OPTIONAL))
def test_optional_features_render_valid_manifests(feature: str, chart: Any) -> None:
    values = yaml.safe_load(render_values(CASES[12])) | OPTIONAL[feature]
    chart.validate_schema(values)
    objects = _render(chart, values)
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    if feature == "api-key":
        (secret,) = by_kind(objects, "Secret")
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "--api-key-file" in server["args"]
    if feature == "existing-api-key":
        assert by_kind(objects, "Secret") == []
        assert server["args"][server["args"].index("--api-key-file") + 1] == "/run/secrets/llama-server/k"
    if feature == "hpa":
        (hpa,) = by_kind(objects, "HorizontalPodAutoscaler")
        assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "llamacpp:requests_deferred"
        assert "replicas" not in deployment["spec"]
    if feature == "no-persistence":
        assert by_kind(objects, "PersistentVolumeClaim") == []
    if feature == "no-download":
        assert "initContainers" not in pod and "--offline" not in server["args"]
        assert any(e["name"] == "HF_TOKEN" for e in server["env"])
    if feature == "hf-token":
        env = {e["name"]: e for e in pod["initContainers"][0]["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema as JSON Schema that refuses undeclared fields (strict field validation)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_schema(filename: str, api_version: str) -> dict[str, Any]:
    crd = yaml.safe_load((DATA / filename).read_text())
    group = crd["spec"]["group"]
    for version in crd["spec"]["versions"]:
        if f"{group}/{version['name']}" == api_version and version["served"]:
            schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
            return schema
    raise AssertionError(f"{filename} serves no {api_version}")


def test_crd_objects_match_their_schemas(chart: Any) -> None:
    """ServiceMonitor and KEDA ScaledObject are checked against the published CRDs' OpenAPI schemas."""
    values = yaml.safe_load(render_values(CASES[12])) | {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "autoscaling": {
            "enabled": True,
            "engine": "keda",
            "keda": {"serverAddress": "http://prometheus.monitoring:9090"},
        },
        "apiKey": {"enabled": True},
    }
    objects = _render(chart, values)
    crds = {
        "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
        "ScaledObject": "keda.sh_scaledobjects.yaml",
    }
    checked = 0
    for obj in objects:
        if obj["kind"] in crds:
            jsonschema.validate(obj, _crd_schema(crds[obj["kind"]], obj["apiVersion"]))
            checked += 1
        else:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)
    assert checked == 2
    (scaled,) = by_kind(objects, "ScaledObject")
    assert "llamacpp:requests_deferred" in scaled["spec"]["triggers"][0]["metadata"]["query"]
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["key"] == "api-key"
    bad = monitor | {"spec": monitor["spec"] | {"endpoint": []}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _crd_schema(crds["ServiceMonitor"], monitor["apiVersion"]))


def test_bad_values_are_refused_by_the_schema(chart: Any) -> None:
    helm = pytest.importorskip("helm_python")
    base = yaml.safe_load(render_values(CASES[12]))
    bad = [
        base | {"backend": "metal"},
        base | {"server": base["server"] | {"args": ["--port", "9000"]}},
        base | {"gpu": {"count": -1, "resource": "nvidia.com/gpu"}},
        base | {"image": base["image"] | {"build": "latest"}},
        base | {"unknownKey": 1},
    ]
    for values in bad:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(values)


def test_gpu_count_on_cpu_backend_fails_rendering(chart: Any) -> None:
    helm = pytest.importorskip("helm_python")
    values = yaml.safe_load(render_values(CASES[0])) | {"gpu": {"count": 1, "resource": "nvidia.com/gpu"}}
    with pytest.raises(helm.HelmError, match="needs a GPU backend"):
        chart.render(values=values, name="demo", namespace="llm")


CATALOG_MODELS = (
    ("llama-3.1-8b-instruct", "Q4_K_M"),
    ("qwen3-30b-a3b", "Q4_K_M"),
    ("gpt-oss-120b", "MXFP4_MOE"),
    ("nemotron-3-super-120b-a12b", "Q4_K_S"),
    ("granite-4.0-h-tiny", "Q8_0"),
    ("deepseek-r1", "Q2_K"),
)
CATALOG_TARGETS = ("cpu", "scaleway/l4-2-24g", "amd-mi300x-192gb", "amd-radeon-rx-7900-xtx-24gb", "8xH100-80G")


def test_catalog_plans_render_valid_charts(chart: Any, values_schema: dict[str, Any]) -> None:
    """Plans from the planner on catalog models and targets: values, schema, chart, manifests."""
    planner = pytest.importorskip("servefit.planner")
    pytest.importorskip("servefit.catalog.models")
    from servefit.errors import RenderError
    from servefit.hardware import resolve_target
    from servefit.resolve import resolve_model

    rendered = refused = 0
    backends: set[str] = set()
    for model_id, quant in CATALOG_MODELS:
        spec = resolve_model(model_id, quant)
        for target in CATALOG_TARGETS:
            plan = planner.make_plan(spec, resolve_target(target))
            if not plan.fits or plan.backend == "metal":
                with pytest.raises(RenderError):
                    render_values(plan)
                refused += 1
                continue
            values = yaml.safe_load(render_values(plan))
            jsonschema.validate(values, values_schema)
            objects = _render(chart, values, name=values["release"]["name"])
            for obj in objects:
                for version in KUBERNETES_VERSIONS:
                    kubernetes_validate.validate(obj, version, strict=True)
            (deployment,) = by_kind(objects, "Deployment")
            args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            assert args[len(args) - len(values["server"]["args"]) :] == _without_owned(list(plan.llama_server_args))
            backends.add(plan.backend)
            rendered += 1
    assert rendered >= 20, (rendered, refused)
    assert {"cpu", "rocm"} <= backends and backends & {"cuda12", "cuda13"}
