"""``servefit hardware``: listing, filtering, ``show``, and the JSON shape."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from servefit import hardware as hw

GIB = 1 << 30


def _app() -> typer.Typer:
    """The real ``servefit`` app; while sibling command modules are missing, one holding only ``hardware``."""
    try:
        cli = importlib.import_module("servefit.cli")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("servefit.cli."):
            raise
        path = Path(hw.__file__).parent / "cli" / "hardware.py"
        spec = importlib.util.spec_from_file_location("servefit_cli_hardware_alone", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        app = typer.Typer()
        module.register(app)
        app.command("version")(lambda: None)  # a second command keeps 'hardware' a subcommand
        return app
    app = cli.app
    assert isinstance(app, typer.Typer)
    return app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), ["hardware", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def run_json(*args: str) -> Any:
    code, out = run(*args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_json_shape() -> None:
    data = run_json()
    assert set(data) == {"gpus", "machines"}
    assert len(data["gpus"]) == len(hw.list_gpus()) >= 35
    assert len(data["machines"]) == len(hw.list_targets())
    for gpu in data["gpus"]:
        assert {"id", "name", "memory_bytes", "bandwidth_gb_s", "fp16_tflops", "source"} <= set(gpu)
        assert isinstance(gpu["memory_bytes"], int) and gpu["memory_bytes"] > 0 and gpu["source"]
    for machine in data["machines"]:
        keys = {"id", "provider", "name", "gpu", "gpu_count", "ram_bytes", "vcpus", "price_per_hour", "currency"}
        assert keys | {"source"} <= set(machine)
        assert isinstance(machine["ram_bytes"], int) and machine["gpu_count"] == len(machine["devices"])
    scaleway = next(m for m in data["machines"] if m["id"] == "scaleway/l4-1-24g")
    assert scaleway["provider"] == "Scaleway" and scaleway["gpu"] == "nvidia-l4" and scaleway["gpu_count"] == 1
    assert scaleway["currency"] == "EUR" and scaleway["price_per_hour"] > 0


def test_provider_filter_and_query() -> None:
    data = run_json("l4", "--provider", "scaleway")
    ids = {m["id"] for m in data["machines"]}
    assert {"scaleway/l4-1-24g", "scaleway/l4-2-24g", "scaleway/l4-4-24g", "scaleway/l4-8-24g"} <= ids
    assert all(m["provider"] == "Scaleway" for m in data["machines"])
    assert data["gpus"] == []  # a provider filter lists machines only
    everything_l40s = run_json("l40s")
    assert {g["id"] for g in everything_l40s["gpus"]} == {"nvidia-l40s"}
    assert all("l40s" in json.dumps(m).lower() for m in everything_l40s["machines"])


def test_show_machine_and_gpu() -> None:
    machine = run_json("show", "Scaleway/L4-2-24G")
    assert machine["id"] == "scaleway/l4-2-24g" and machine["gpu_class"] == "nvidia-l4-48gb"
    assert machine["backend"] == "cuda13" and machine["kind"] == "cloud"
    assert sum(d["memory_bytes"] for d in machine["devices"]) == machine["vram_bytes"]
    gpu = run_json("show", "rtx-4090")
    assert gpu["id"] == "nvidia-rtx-4090" and gpu["memory_bytes"] >= 24 * 10**9
    ws = run_json("show", "mac-studio-m3-ultra-512gb")
    assert ws["kind"] == "workstation" and ws["backend"] == "metal" and ws["unified_memory"] is True
    cls = run_json("show", "2xL4")
    assert cls["id"] == "nvidia-l4-48gb" and cls["kind"] == "gpu-class"


def test_table_output() -> None:
    code, out = run("h100", "--provider", "Lambda")
    assert code == 0
    assert "lambda/gpu_1x_h100_pcie" in out and "3.29 USD/h" in out and "aws/" not in out
    code, out = run("show", "cpu")
    assert code == 0 and "CPU only" in out


def test_show_unknown_and_bad_usage() -> None:
    main = _main()
    assert main(["hardware", "show", "scaleway/l4-3-24g"]) == 1
    assert main(["hardware", "show"]) == 1
    assert main(["hardware", "--provider", "nosuchcloud"]) == 1


def test_error_lines(capsys: pytest.CaptureFixture[str]) -> None:
    main = _main()
    assert main(["hardware", "show", "rtx4090"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["servefit: unknown hardware 'rtx4090': did you mean 'rtx-4090', 'rtx-5090' or 'rtx-4080'?"]


def _main() -> Any:
    try:
        cli = importlib.import_module("servefit.cli")
    except ModuleNotFoundError as exc:
        pytest.skip(f"servefit.cli not importable yet ({exc.name})")
    return cli.main
