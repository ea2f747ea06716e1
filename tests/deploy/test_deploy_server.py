"""The chart's llama-server arguments accepted by a real llama-server of the pinned build.

``scripts/ensure-llama.sh --server`` builds llama-server (and llama-quantize) from the llama.cpp
source inside the llama-cpp-python 0.3.36 sdist (CPU, no web UI). Each test takes the container
arguments exactly as Helm renders them into the Deployment, swaps the model source for a small
synthetic GGUF of the same family (``-hf REPO:QUANT --offline`` -> ``-m file``), binds 127.0.0.1 on
a free port, caps the context for the tiny model, and waits for ``/health`` to answer 200.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy_helpers import by_kind, manifests
from deploy_plans import MODELS, all_cases
from fake_hub import Hub, serve_hub

from servefit.plan import Plan
from servefit.render.compose import compose_data
from servefit.render.values import LLAMA_CPP_COMMIT, render_values

pytestmark = pytest.mark.server

CACHE = Path(os.environ.get("SERVEFIT_CACHE", Path.home() / ".cache" / "servefit"))
# LLAMA_SERVER_BIN points at another build of the same source (for example one linked against the
# llama-cpp-python wheel's libraries).
SERVER = Path(os.environ.get("LLAMA_SERVER_BIN", CACHE / "bin" / "llama-server"))
QUANTIZE = CACHE / "bin" / "llama-quantize"
START_TIMEOUT_S = 90.0
MAX_TEST_CONTEXT = 2048
FAMILY_ARCH = {"dense": "llama", "moe": "qwen3moe", "hybrid": "nemotron_h_moe", "recurrent": "mamba2"}
FAMILY = {m.model_id: m.family for m in MODELS}


@pytest.fixture(scope="module")
def server_bin() -> Path:
    if not os.access(SERVER, os.X_OK):
        pytest.skip(f"{SERVER} is missing: run scripts/ensure-llama.sh --server")
    return SERVER


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(
    binary: Path, args: list[str], log: Path, env: dict[str, str] | None = None, timeout_s: float = START_TIMEOUT_S
) -> Iterator[str]:
    """Start llama-server, wait for /health 200 (bounded), yield its URL, always stop it."""
    port = int(args[args.index("--port") + 1])
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary), *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                status = httpx.get(f"{url}/health", timeout=2.0).status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.25)
        else:
            pytest.fail(
                f"/health not 200 after {timeout_s:.0f} s (last {status}):\n{log.read_text(errors='replace')[-3000:]}"
            )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _deployment_args(chart: Any, plan: Plan) -> list[str]:
    values = yaml.safe_load(render_values(plan))
    objects = manifests(chart.render(values=values, name=values["release"]["name"], namespace="llm"))
    (deployment,) = by_kind(objects, "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def scaled(args: list[str], model: Path, port: int) -> list[str]:
    """The chart's arguments pointed at a local model file, on 127.0.0.1, with a context the tiny model can hold."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-hf":
            out += ["-m", str(model)]
            i += 2
            continue
        if arg == "--offline":
            i += 1
            continue
        if arg in ("--host", "--port", "-c"):
            value = args[i + 1]
            if arg == "--host":
                value = "127.0.0.1"
            elif arg == "--port":
                value = str(port)
            else:
                value = str(min(int(value), MAX_TEST_CONTEXT))
            out += [arg, value]
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _features(plan: Plan) -> set[str]:
    args = plan.llama_server_args
    feats = {a for a in args if a.startswith("-")}
    feats |= {f"fa={args[args.index('-fa') + 1]}", f"ctk={plan.cache_type_k}", f"ctv={plan.cache_type_v}"}
    feats |= {f"family={FAMILY[plan.model_id]}", f"strategy={plan.strategy}"}
    return feats


def _covering_cases() -> list[Plan]:
    """The fewest generated plans that together use every flag, value and model family of all of them."""
    chosen: list[Plan] = []
    seen: set[str] = set()
    for plan in all_cases():
        new = _features(plan) - seen
        if new:
            chosen.append(plan)
            seen |= new
    return chosen


COVERING = _covering_cases()


def test_covering_cases_use_every_flag() -> None:
    every = set().union(*(_features(p) for p in all_cases()))
    assert set().union(*(_features(p) for p in COVERING)) == every
    assert {
        "-ot",
        "--n-cpu-moe",
        "-ts",
        "-sm",
        "--cache-ram",
        "--load-mode",
        "-ctk",
        "-ctv",
        "-fa",
        "-np",
        "-ngl",
    } <= every


@pytest.mark.parametrize("plan", COVERING, ids=[f"{p.model_id}@{p.target_id}" for p in COVERING])
def test_chart_args_start_a_real_server(
    plan: Plan, chart: Any, server_bin: Path, synth_model: Callable[..., Path], tmp_path: Path
) -> None:
    model = synth_model(FAMILY_ARCH[FAMILY[plan.model_id]])
    args = scaled(_deployment_args(chart, plan), model, _free_port())
    with running(server_bin, args, tmp_path / "server.log") as url:
        metrics = httpx.get(f"{url}/metrics", timeout=10.0)
        assert metrics.status_code == 200
        assert "llamacpp:requests_deferred" in metrics.text  # the autoscaling metric exists


def test_compose_command_starts_a_real_server(
    server_bin: Path, synth_model: Callable[..., Path], tmp_path: Path
) -> None:
    plan = COVERING[1]
    data = compose_data(plan)
    command = data["services"]["llama-server"]["command"]
    args = scaled(command, synth_model("llama"), _free_port())
    env = dict(os.environ, LLAMA_API_KEY="")  # compose passes ${LLAMA_API_KEY:-}: empty means no key
    with running(server_bin, args, tmp_path / "server.log", env=env) as url:
        assert httpx.get(f"{url}/v1/models", timeout=10.0).status_code == 200


def test_api_key_file_as_the_chart_mounts_it(
    chart: Any, server_bin: Path, synth_model: Callable[..., Path], tmp_path: Path
) -> None:
    plan = COVERING[0]
    values = yaml.safe_load(render_values(plan)) | {"apiKey": {"enabled": True}}
    objects = manifests(chart.render(values=values, name="demo", namespace="llm"))
    args: list[str] = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    key_file = tmp_path / "api-key"
    key_file.write_text("s3cret-key\n")
    i = args.index("--api-key-file")
    args = [*args[: i + 1], str(key_file), *args[i + 2 :]]
    with running(server_bin, scaled(args, synth_model("llama"), _free_port()), tmp_path / "server.log") as url:
        assert httpx.get(f"{url}/v1/models", timeout=10.0).status_code == 401
        ok = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer s3cret-key"}, timeout=10.0)
        assert ok.status_code == 200


def test_an_unknown_flag_is_refused(server_bin: Path, synth_model: Callable[..., Path], tmp_path: Path) -> None:
    """The harness can fail: a flag this build does not know stops the server."""
    args = ["-m", str(synth_model("llama")), "--host", "127.0.0.1", "--port", str(_free_port()), "--no-mmap-typo"]
    proc = subprocess.run([str(server_bin), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--no-mmap-typo" in proc.stdout + proc.stderr


def test_download_then_serve_offline(server_bin: Path, synth_model: Callable[..., Path], tmp_path: Path) -> None:
    """The chart's model flow: fetch REPO:QUANT into LLAMA_CACHE, then serve it with --offline and no network."""
    quantized = tmp_path / "tiny-Q8_0.gguf"
    if os.access(QUANTIZE, os.X_OK):
        subprocess.run(
            [str(QUANTIZE), str(synth_model("llama")), str(quantized), "Q8_0"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    else:
        pytest.importorskip("llama_cpp")
        from llamacpp_log import quantize

        quantize(synth_model("llama"), quantized, "Q8_0")
    cache = tmp_path / "cache"
    hub = Hub(repos={"servefit-test/tiny-GGUF": {"tiny-Q8_0.gguf": quantized.read_bytes(), "README.md": b"tiny"}})
    base = ["-hf", "servefit-test/tiny-GGUF:Q8_0", "--host", "127.0.0.1", "-c", "512", "--metrics"]
    with serve_hub(hub):
        env = dict(os.environ, LLAMA_CACHE=str(cache), MODEL_ENDPOINT=hub.base_url, HF_TOKEN="")
        with running(server_bin, [*base, "--port", str(_free_port())], tmp_path / "download.log", env=env):
            pass
        assert any("/resolve/" in r for r in hub.requests)
    downloaded = list(cache.rglob("tiny-Q8_0.gguf"))
    assert downloaded and downloaded[0].read_bytes() == quantized.read_bytes()

    # the hub is gone: --offline serves from the cache alone
    env = dict(os.environ, LLAMA_CACHE=str(cache), MODEL_ENDPOINT="http://127.0.0.1:9/")
    with running(server_bin, [*base, "--offline", "--port", str(_free_port())], tmp_path / "offline.log", env=env):
        pass


def test_planner_plans_start_a_real_server(
    chart: Any, server_bin: Path, synth_model: Callable[..., Path], tmp_path: Path
) -> None:
    """Plans from the planner and the catalogs (when they are installed), through the chart, into llama-server."""
    planner = pytest.importorskip("servefit.planner")
    from servefit.hardware import resolve_target
    from servefit.resolve import resolve_model

    combos = [
        ("llama-3.1-8b-instruct", "Q4_K_M", "rtx-4090"),
        ("qwen3-30b-a3b", "Q4_K_M", "2xl4"),
        ("qwen3-30b-a3b", "Q4_K_M", "cpu"),
    ]
    for model_id, quant, target in combos:
        spec = resolve_model(model_id, quant)
        plan = planner.make_plan(spec, resolve_target(target))
        if not plan.fits:
            continue
        arch = "qwen3moe" if spec.is_moe else "llama"
        args = scaled(_deployment_args(chart, plan), synth_model(arch), _free_port())
        with running(server_bin, args, tmp_path / f"{model_id}-{target}.log"):
            pass


def test_tested_source_is_the_pinned_commit() -> None:
    """The llama.cpp these tests build is the commit the image tag (build b11312) was released from."""
    changelog = CACHE / "src" / "llama_cpp_python-0.3.36" / "CHANGELOG.md"
    if not changelog.exists():
        pytest.skip(f"{changelog} is missing: run scripts/ensure-llama.sh --server")
    section = changelog.read_text().split("## [0.3.36]", 1)[1].split("## [", 1)[0]
    assert f"ggml-org/llama.cpp@{LLAMA_CPP_COMMIT[:9]}" in section


def test_planner_plan_without_mmap_starts_a_real_server(
    chart: Any, server_bin: Path, synth_model: Callable[..., Path], tmp_path: Path
) -> None:
    planner = pytest.importorskip("servefit.planner")
    from servefit.hardware import resolve_target
    from servefit.plan import Options
    from servefit.resolve import resolve_model

    plan = planner.make_plan(
        resolve_model("llama-3.1-8b-instruct", "Q4_K_M"), resolve_target("cpu"), Options(mmap=False)
    )
    assert plan.fits
    args = scaled(_deployment_args(chart, plan), synth_model("llama"), _free_port())
    with running(server_bin, args, tmp_path / "no-mmap.log"):
        pass
