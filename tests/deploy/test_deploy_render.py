"""The renderers' contract: write_deploy, deploy_commands, refusals, the CLI, the chart README."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest
import yaml
from deploy_helpers import CHART, REPO
from deploy_plans import all_cases, unfit_plan

from servefit.errors import RenderError, ServefitError
from servefit.plan import Plan
from servefit.render import deploy_commands, render_compose, render_values, values_filename, write_deploy
from servefit.render.chart_readme import document_values, render_chart_readme
from servefit.render.values import chart_values, hf_reference, server_args

CASES = all_cases()


def test_write_deploy_writes_the_folder(tmp_path: Path) -> None:
    plan = CASES[12]
    written = write_deploy(plan, tmp_path / "out")
    names = {p.name for p in written}
    assert {"values.yaml", "helmfile.yaml.gotmpl", "compose.yaml", "README.md", "llama-server"} <= names
    out = tmp_path / "out"
    assert (out / "values.yaml").read_text() == render_values(plan)
    assert (out / "compose.yaml").read_text() == render_compose(plan)
    assert (out / "helmfile.yaml.gotmpl").read_text() == (REPO / "helmfile.yaml.gotmpl").read_text()
    assert (out / "charts" / "llama-server" / "values.schema.json").read_text() == (
        CHART / "values.schema.json"
    ).read_text()
    readme = (out / "README.md").read_text()
    assert "helmfile --state-values-file values.yaml apply" in readme
    assert "ansible-playbook -i inventory.ini servefit.infra.nvidia_container_toolkit" in readme
    assert (out / "manifests" / "runtimeclass-nvidia.yaml").is_file()
    # the exact server command of the README is the compose command
    command_line = next(line for line in readme.splitlines() if line.startswith("llama-server "))
    compose = yaml.safe_load(render_compose(plan))
    assert shlex.split(command_line)[1:] == compose["services"]["llama-server"]["command"]


def test_cpu_plan_needs_no_node_preparation(tmp_path: Path) -> None:
    plan = next(p for p in CASES if p.backend == "cpu")
    commands = deploy_commands(plan, "https://example.org/values/cpu.yaml")
    assert commands == ["helmfile --state-values-file <(curl -fsSL https://example.org/values/cpu.yaml) apply"]
    write_deploy(plan, tmp_path)
    assert not (tmp_path / "manifests").exists()
    assert "ansible-playbook" not in (tmp_path / "README.md").read_text()


def test_deploy_commands_for_nvidia() -> None:
    plan = next(p for p in CASES if p.backend == "cuda12")
    url = "https://servefit.example/values/llama 3.yaml"
    commands = deploy_commands(plan, url)
    assert commands[0] == "ansible-playbook -i inventory.ini servefit.infra.nvidia_container_toolkit"
    assert commands[1] == f"helmfile --state-values-file <(curl -fsSL {shlex.quote(url)}) apply"


def test_a_plan_that_does_not_fit_writes_nothing(tmp_path: Path) -> None:
    plan = unfit_plan()
    out = tmp_path / "out"
    with pytest.raises(RenderError, match="does not fit") as info:
        write_deploy(plan, out)
    assert "60.0 GiB" in str(info.value)
    assert not out.exists()
    for render in (render_values, render_compose):
        with pytest.raises(RenderError):
            render(plan)
    with pytest.raises(RenderError):
        deploy_commands(plan, "https://example.org/x.yaml")


def test_metal_and_missing_repository_are_refused(tmp_path: Path) -> None:
    metal = dataclasses.replace(CASES[1], backend="metal")
    with pytest.raises(RenderError, match="metal"):
        write_deploy(metal, tmp_path / "m")
    no_repo = dataclasses.replace(CASES[1], gguf_repo="")
    with pytest.raises(RenderError, match="Hugging Face"):
        render_values(no_repo)
    assert not (tmp_path / "m").exists()


def test_unwritable_folder_is_a_servefit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ServefitError, match="cannot write"):
        write_deploy(CASES[0], blocker / "sub")


def test_owned_flags_are_left_to_the_chart() -> None:
    plan = dataclasses.replace(
        CASES[3],
        llama_server_args=(
            "-m",
            "/x.gguf",
            "--host=::",
            "--port",
            "1",
            "-c",
            "8",
            "--metrics",
            "--offline",
            "-fa",
            "on",
        ),
    )
    assert server_args(plan) == ["-c", "8", "-fa", "on"]
    assert hf_reference(plan) == f"{plan.gguf_repo}:{plan.quant}"


def test_values_are_deterministic_and_yaml_safe() -> None:
    plan = dataclasses.replace(CASES[5], model_name='Evil: "name"\n# not a comment', warnings=("a: b\nc",))
    text = render_values(plan)
    assert text == render_values(plan)
    assert yaml.safe_load(text)["model"]["hfRepo"] == plan.gguf_repo
    assert all(line.startswith("#") or not line.startswith(" # ") for line in text.splitlines())


def test_values_filename_never_escapes_the_folder() -> None:
    plan = dataclasses.replace(CASES[1], gpu_class="../../etc/passwd")
    assert values_filename(plan) == "etc-passwd.yaml"


def test_chart_readme_is_generated_from_values() -> None:
    assert (CHART / "README.md").read_text() == render_chart_readme(CHART)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = {d.key for d in document_values((CHART / "values.yaml").read_text())}
    for key in values:
        assert key in documented or any(d.startswith(key + ".") for d in documented), key


def _cli(*args: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "servefit", *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_values_and_deploy(tmp_path: Path) -> None:
    pytest.importorskip("servefit.planner")
    pytest.importorskip("servefit.catalog.models")
    code, out, err = _cli("values", "qwen3-30b-a3b", "--quant", "Q4_K_M", "--on", "scaleway/l4-2-24g")
    assert code == 0, err
    values = yaml.safe_load(out)
    assert values["gpu"]["count"] == 2 and values["servefit"]["gpuClass"] == "nvidia-l4-48gb"
    assert values["model"]["quant"] == "Q4_K_M"

    code, out, err = _cli("deploy", "qwen3-30b-a3b", "--quant", "Q4_K_M", "--on", "cpu", "--out", str(tmp_path / "d"))
    assert code == 0, err
    assert (tmp_path / "d" / "values.yaml").is_file() and (tmp_path / "d" / "compose.yaml").is_file()
    assert "helmfile --state-values-file values.yaml apply" in out


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    pytest.importorskip("servefit.planner")
    code, out, err = _cli("values", "qwen3-30b-a3b", "--quant", "Q4_K_M", "--on", "no-such-gpu-9000")
    assert code == 1 and out == ""
    assert err.startswith("servefit: unknown hardware") and len(err.strip().splitlines()) == 1
    code, out, err = _cli(
        "deploy", "qwen3-30b-a3b", "--quant", "Q4_K_M", "--on", "cpu", "-np", "0", "--out", str(tmp_path)
    )
    assert code == 1 and "--parallel" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()) and "wrote" not in out


def _values_with_pure_python_yaml(plan: Plan) -> str:
    """render_values as first written: the pure-Python dumper for every section (no cache)."""
    import servefit.render.values as rv

    class PythonDumper(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True

    def to_yaml(value: object) -> str:
        out: str = yaml.dump(
            value, Dumper=PythonDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
        )
        return out.rstrip()

    env = rv.template_environment().overlay()
    env.filters["to_yaml"] = to_yaml
    return env.get_template("values.yaml.j2").render(
        plan=plan,
        values=rv.chart_values(plan),
        image=rv.image_reference(plan.backend),
        hf_ref=hf_reference(plan),
        filename=values_filename(plan),
        memory_request_bytes=rv.memory_request_bytes(plan),
    )


def test_values_text_is_what_the_pure_python_yaml_writes() -> None:
    odd = dataclasses.replace(
        CASES[2],
        model_id="yes",
        target_name="on: off",
        llama_server_args=("-c", "0x10", "--alias", "null", "--x", "1e3", "--y", "ünï — code", "--z", "'q' \"d\""),
    )
    for plan in [*CASES, odd]:
        try:
            expected = _values_with_pure_python_yaml(plan)
        except RenderError:
            continue
        text = render_values(plan)
        assert text == expected
        assert yaml.load(text, Loader=yaml.SafeLoader) == chart_values(plan)


def test_data_injected_through_a_comment_is_refused() -> None:
    """The self-check: a value the template writes outside a comment changes the data, and the
    file is refused rather than written."""
    plan = next(p for p in CASES if p.fits and p.backend != "cpu")
    for gpu_class in ("l4\ninjected: 1", "l4\nbackend: cpu", "l4\n  extra: 1", "l4\n---"):
        with pytest.raises(RenderError, match="does not match the plan"):
            render_values(dataclasses.replace(plan, gpu_class=gpu_class))
    # A multi-line string in the data is written and read back (the full parse decides).
    text = render_values(dataclasses.replace(plan, llama_server_args=("--alias", "a\n\n# b\n")))
    assert yaml.safe_load(text)["server"]["args"] == ["--alias", "a\n\n# b\n"]
