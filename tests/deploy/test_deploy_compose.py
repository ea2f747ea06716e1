"""compose.yaml against the Compose specification's JSON schema, and against the plan."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_helpers import DATA
from deploy_plans import all_cases

from servefit.plan import Plan
from servefit.render.compose import render_compose
from servefit.render.values import LLAMA_CPP_BUILD

CASES = all_cases()


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((DATA / "compose-spec.json").read_text())
    return schema


def test_every_compose_file_is_valid(compose_schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(compose_schema)
    for plan in CASES:
        data = yaml.safe_load(render_compose(plan))
        errors = sorted(validator.iter_errors(data), key=str)
        assert not errors, f"{plan.model_id}@{plan.target_id}: {errors[0].message}"
        _check_against_plan(plan, data)


def _check_against_plan(plan: Plan, data: dict[str, Any]) -> None:
    server = data["services"]["llama-server"]
    download = data["services"]["download"]
    assert server["image"].endswith(f"-{LLAMA_CPP_BUILD}") and download["image"] == server["image"]
    command = server["command"]
    hf_ref = f"{plan.gguf_repo}:{plan.quant}"
    assert command[:2] == ["-hf", hf_ref] and download["command"] == ["-hf", hf_ref]
    assert "--offline" in command and command[command.index("--port") + 1] == "8080"
    for flag in ("-c", "-ngl", "-ts", "--n-cpu-moe", "-ctk", "-ctv", "-fa", "-np", "-ot"):
        if flag in plan.llama_server_args:
            i = plan.llama_server_args.index(flag)
            assert command[command.index(flag) + 1] == plan.llama_server_args[i + 1], flag
    assert server["depends_on"]["download"]["condition"] == "service_completed_successfully"
    assert server["ports"] == ["127.0.0.1:8080:8080"]
    assert server["cap_drop"] == ["ALL"] and server["read_only"] is True
    gpus = sum(d.kind == "gpu" for d in plan.devices) if plan.backend != "cpu" else 0
    if plan.backend.startswith("cuda"):
        (device,) = server["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "count": gpus, "capabilities": ["gpu"]}
    elif plan.backend == "rocm":
        assert server["devices"] == ["/dev/kfd", "/dev/dri"]
    elif plan.backend == "vulkan":
        assert server["devices"] == ["/dev/dri"]
    else:
        assert "deploy" not in server and "devices" not in server


def test_schema_rejects_a_broken_compose_file(compose_schema: dict[str, Any]) -> None:
    data = yaml.safe_load(render_compose(CASES[3]))
    data["services"]["llama-server"]["deploy"]["resources"]["reservations"]["devices"][0]["capability"] = ["gpu"]
    validator = jsonschema.Draft7Validator(compose_schema)  # the schema names draft-07 without the trailing '#'
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(data)
    data = yaml.safe_load(render_compose(CASES[3]))
    data["services"]["llama-server"]["healthchek"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(data)
