"""``servefit compare`` / ``servefit recommend``: ranking, JSON, filters and errors."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import typer
from test_speed import bench, gpu, machine, plan_for, spec_of
from typer.testing import CliRunner

from servefit import speed
from servefit.cli import speed as cli_speed
from servefit.errors import OptionsError
from servefit.plan import GIB, Plan


def _app() -> typer.Typer:
    app = typer.Typer()
    cli_speed.register(app)
    return app


def _plans() -> list[Plan]:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    out = []
    for target, bandwidth, price in (("cheap/l4", 300.0, 0.8), ("fast/h100", 2000.0, 2.5), ("home/4090", 1008.0, None)):
        m = dataclasses.replace(machine(gpu(bandwidth), price=price), id=target)
        out.append(speed.estimate(dataclasses.replace(plan_for(spec, m), target_id=target), spec, m))
    return out


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake_compare(model_id: str, quant: str, **kw: Any) -> list[Plan]:
        seen.append({"model_id": model_id, "quant": quant, **kw})
        plans = _plans()
        return sorted(plans, key=lambda p: speed._sort_key(p, kw.get("sort", "cost")))

    def fake_recommend(model_id: str, **kw: Any) -> list[Plan]:
        seen.append({"model_id": model_id, **kw})
        return sorted(_plans(), key=lambda p: speed._sort_key(p, "cost"))

    monkeypatch.setattr(speed, "compare", fake_compare)
    monkeypatch.setattr(speed, "recommend", fake_recommend)
    return seen


def test_compare_table_ranks_and_passes_filters(calls: list[dict[str, Any]]) -> None:
    args = ["compare", "llama-3-8b", "--quant", "Q4_K_M", "--min-context", "8192", "--min-tok-s", "5"]
    result = CliRunner().invoke(_app(), [*args, "--max-price", "3", "--provider", "scaleway"])
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "model_id": "llama-3-8b",
            "quant": "Q4_K_M",
            "min_context": 8192,
            "min_tok_s": 5.0,
            "max_price": 3.0,
            "provider": "scaleway",
            "sort": "cost",
        }
    ]
    out = result.output
    # printed in the order compare() ranked them (cost per Mtok; the unpriced target last)
    ranked = [p.target_id for p in sorted(_plans(), key=lambda p: speed._sort_key(p, "cost"))]
    assert ranked[-1] == "home/4090"
    assert [out.index(t) for t in ranked] == sorted(out.index(t) for t in ranked)
    assert "EUR" in out and "GPU memory bandwidth" in out


def test_compare_json_carries_the_speed_fields(calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(_app(), ["compare", "m", "--quant", "Q4_K_M", "--json", "--sort", "decode"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["target_id"] for d in data] == ["fast/h100", "home/4090", "cheap/l4"]
    for d in data:
        for key in ("decode_tok_s", "prefill_tok_s", "ttft_s", "prompt_tokens", "cost_per_mtok", "bottleneck"):
            assert key in d
    assert data[0]["decode_tok_s"] > data[1]["decode_tok_s"] > data[2]["decode_tok_s"]


def test_recommend_prints_the_best_first(calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(_app(), ["recommend", "llama-3-8b", "--min-tok-s", "10", "--json"])
    assert result.exit_code == 0, result.output
    assert calls[0] == {"model_id": "llama-3-8b", "min_context": None, "min_tok_s": 10.0}
    data = json.loads(result.output)
    costs = [d["cost_per_mtok"] for d in data if d["cost_per_mtok"] is not None]
    assert costs == sorted(costs) and data[-1]["cost_per_mtok"] is None


def test_empty_result_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "compare", lambda *a, **k: [])
    result = CliRunner().invoke(_app(), ["compare", "m", "--quant", "Q4_K_M"])
    assert result.exit_code == 0
    assert "no catalog target meets the bar" in result.output


def test_bad_sort_reaches_the_user_as_one_error() -> None:
    result = CliRunner().invoke(_app(), ["compare", "m", "--quant", "Q4_K_M", "--sort", "fastest"])
    assert result.exit_code != 0
    assert isinstance(result.exception, OptionsError)
    assert "unknown sort 'fastest'" in str(result.exception)


def test_negative_bar_is_refused_by_the_parser() -> None:
    result = CliRunner().invoke(_app(), ["compare", "m", "--quant", "Q4_K_M", "--min-tok-s", "-1"])
    assert result.exit_code == 2


def test_mixed_currencies_are_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    plans = _plans()
    plans[1] = dataclasses.replace(plans[1], currency="USD")
    monkeypatch.setattr(speed, "compare", lambda *a, **k: plans)
    result = CliRunner().invoke(_app(), ["compare", "m", "--quant", "Q4_K_M"])
    assert "prices in EUR and USD are ranked at face value" in result.output


# ------------------------------------------------------------------------------------------
# the real thing: catalog model, hardware catalog, planner


@pytest.fixture(scope="module")
def real() -> None:
    pytest.importorskip("servefit.planner")
    pytest.importorskip("servefit.hardware")
    pytest.importorskip("servefit.catalog.models")


@pytest.mark.usefixtures("real")
def test_compare_ranks_real_targets_by_cost_and_honours_filters() -> None:
    from servefit.hardware import list_targets

    plans = speed.compare("llama-3.1-8b-instruct", "Q4_K_M", provider="scaleway", max_price=3.0, min_context=8192)
    assert plans, "an 8B model at Q4_K_M runs on some Scaleway GPU under 3 EUR/h"
    costs = [p.cost_per_mtok for p in plans]
    assert all(c is not None for c in costs) and costs == sorted(costs)  # type: ignore[type-var]
    scaleway = {m.id for m in list_targets() if m.provider.lower() == "scaleway"}
    for p in plans:
        assert p.fits and p.target_id in scaleway
        assert p.price_per_hour is not None and p.price_per_hour <= 3.0
        assert p.context >= 8192
        assert p.decode_tok_s and p.prefill_tok_s and p.ttft_s and p.bottleneck
        assert p.cost_per_mtok == pytest.approx(p.price_per_hour / (p.decode_tok_s * 3600) * 1e6)
    fast = speed.compare("llama-3.1-8b-instruct", "Q4_K_M", provider="scaleway", min_tok_s=60.0, sort="decode")
    speeds = [p.decode_tok_s or 0.0 for p in fast]
    assert fast and min(speeds) >= 60.0 and speeds == sorted(speeds, reverse=True)


@pytest.mark.usefixtures("real")
def test_recommend_meets_the_bar_cheapest_first() -> None:
    plans = speed.recommend("qwen3-4b", min_tok_s=40.0, min_context=16384)
    assert 1 <= len(plans) <= 5
    assert len({p.target_id for p in plans}) == len(plans)
    for p in plans:
        assert p.fits and (p.decode_tok_s or 0.0) >= 40.0 and p.context >= 16384
        assert p.quant in speed.RECOMMEND_QUANTS
    priced = [p.cost_per_mtok for p in plans if p.cost_per_mtok is not None]
    assert priced == sorted(priced)
