"""helmfile.yaml.gotmpl rendered with Go-template semantics by two real engines.

* py-go-template: Go's text/template with the sprig and helmfile function maps and helmfile's
  ``missingkey=error`` (an absent key is an error, as in helmfile);
* Helm's own engine (helm-python-sdk): the template placed in a scratch chart, state values as
  chart values.

Both must produce the same release, and the release's values must render the chart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import CHART, REPO, manifests
from deploy_plans import all_cases

from servefit.render.deploy import helmfile_template
from servefit.render.values import render_values

HELMFILE = REPO / "helmfile.yaml.gotmpl"
CASES = all_cases()[::7]  # a spread over models, targets and strategies

_GO_RENDER = """
import json, pathlib, sys
import go_template
template = pathlib.Path(sys.argv[1])
for values_path in sys.argv[2:]:
    state = json.loads(pathlib.Path(values_path).read_text())
    out = go_template.render(template, {"Values": state, "StateValues": state, "Environment": {"Name": "default"}})
    pathlib.Path(values_path + ".out").write_bytes(out)
"""


def _go_render(tmp_path: Path, states: list[dict[str, Any]]) -> list[str]:
    """Render the helmfile template once per state with Go text/template + sprig + helmfile functions."""
    pytest.importorskip("go_template")
    paths = []
    for i, state in enumerate(states):
        path = tmp_path / f"state{i}.json"
        path.write_text(json.dumps(state))
        paths.append(str(path))
    # The library prints a render error and exits the process: keep it out of the test process.
    proc = subprocess.run(
        [sys.executable, "-c", _GO_RENDER, str(HELMFILE), *paths], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and all(Path(p + ".out").exists() for p in paths), proc.stdout + proc.stderr
    return [Path(p + ".out").read_text() for p in paths]


def _helm_render(tmp_path: Path, state: dict[str, Any]) -> str:
    helm = pytest.importorskip("helm_python")
    chart_dir = tmp_path / "helmfile-engine"
    (chart_dir / "templates").mkdir(parents=True, exist_ok=True)
    (chart_dir / "Chart.yaml").write_text("apiVersion: v2\nname: helmfile-engine\nversion: 0.0.1\n")
    (chart_dir / "templates" / "helmfile.yaml").write_text(HELMFILE.read_text())
    with helm.Chart.load(str(chart_dir)) as chart:
        rendered: dict[str, str] = chart.render(values=state, name="x", namespace="default")
    return rendered["helmfile-engine/templates/helmfile.yaml"]


def test_repository_helmfile_is_the_packaged_one() -> None:
    assert HELMFILE.read_text() == helmfile_template()


def test_helmfile_renders_the_release_in_both_engines(tmp_path: Path, chart: Any) -> None:
    states = [yaml.safe_load(render_values(plan)) for plan in CASES]
    go_outputs = _go_render(tmp_path, states)
    for plan, state, go_text in zip(CASES, states, go_outputs, strict=True):
        go_doc = yaml.safe_load(go_text)
        helm_doc = yaml.safe_load(_helm_render(tmp_path, state))
        assert go_doc == helm_doc, plan.model_id

        release = state["release"]
        assert go_doc["helmDefaults"]["wait"] is True
        assert go_doc["helmDefaults"]["timeout"] == release["timeoutSeconds"] >= 900
        (rel,) = go_doc["releases"]
        assert rel["name"] == release["name"] and rel["namespace"] == release["namespace"]
        assert rel["chart"] == "./charts/llama-server" and (REPO / rel["chart"] / "Chart.yaml").is_file()
        assert rel["wait"] is True and rel["timeout"] == release["timeoutSeconds"]
        assert rel["values"] == [state]  # the state values reach the chart unchanged

        # what helmfile would install: the chart rendered with the release's values
        objects = manifests(chart.render(values=rel["values"][0], name=rel["name"], namespace=rel["namespace"]))
        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        assert deployment["metadata"]["namespace"] == release["namespace"]
        assert deployment["metadata"]["name"] == f"{release['name']}-llama-server"


def test_chart_path_can_be_overridden(tmp_path: Path) -> None:
    state = yaml.safe_load(render_values(CASES[0]))
    state["release"]["chart"] = "oci://registry.example.org/charts/llama-server"
    (go_text,) = _go_render(tmp_path, [state])
    assert yaml.safe_load(go_text)["releases"][0]["chart"] == "oci://registry.example.org/charts/llama-server"


def test_state_values_without_release_fail_clearly(tmp_path: Path) -> None:
    helm = pytest.importorskip("helm_python")
    state = yaml.safe_load(render_values(CASES[0]))
    del state["release"]
    with pytest.raises(helm.HelmError, match="state values need a release block"):
        _helm_render(tmp_path, state)
    path = tmp_path / "norelease.json"
    path.write_text(json.dumps(state))
    proc = subprocess.run(
        [sys.executable, "-c", _GO_RENDER, str(HELMFILE), str(path)], capture_output=True, text=True, timeout=60
    )
    assert "state values need a release block" in proc.stdout + proc.stderr
    assert not Path(str(path) + ".out").exists()


def test_chart_directory_exists() -> None:
    assert (CHART / "Chart.yaml").is_file()
