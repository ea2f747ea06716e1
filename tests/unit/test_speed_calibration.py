"""The calibrated speed model against published llama-bench measurements (bench/data)."""

from __future__ import annotations

import csv
import dataclasses
import statistics

import pytest

from bench_module import load_speed_bench
from servefit import speed

bench = load_speed_bench()


@pytest.fixture(scope="module")
def rows() -> list[object]:
    pytest.importorskip("numpy")
    out: list[object] = bench.all_rows()
    bench.leave_one_gpu_out(out)
    bench.leave_one_model_out(out)
    return out


def _ape(rows: list[object], kind: str, attr: str) -> list[float]:
    return [
        abs(getattr(r, attr) - r.measured) / r.measured * 100  # type: ignore[attr-defined]
        for r in rows
        if r.kind == kind  # type: ignore[attr-defined]
    ]


def test_every_row_is_used(rows: list[object]) -> None:
    with bench.DATA.open() as fh:
        calibration = sum(1 for _ in csv.DictReader(fh))
    with bench.SUPPLEMENT.open() as fh:
        supplement = sum(1 for r in csv.DictReader(fh) if r["tool"] == "llama-bench")
    assert calibration == 432 and supplement > 0
    assert len(rows) == calibration + supplement
    kinds = {r.kind for r in rows}  # type: ignore[attr-defined]
    assert kinds == {"decode", "prefill"}


def test_held_out_error_meets_the_goal(rows: list[object]) -> None:
    # goals of the speed model: median absolute error <= 15% for decode, <= 25% for prefill,
    # measured on GPUs whose rows were left out of the fit
    assert statistics.median(_ape(rows, "decode", "predicted")) <= 15.0
    assert statistics.median(_ape(rows, "prefill", "predicted")) <= 25.0


def test_leave_one_model_out_stays_useful(rows: list[object]) -> None:
    # a model the fit never saw: within twice the goals
    assert statistics.median(_ape(rows, "decode", "held_model")) <= 30.0
    assert statistics.median(_ape(rows, "prefill", "held_model")) <= 50.0


def test_parallel_streams_follow_llama_batched_bench(rows: list[object]) -> None:
    checks = bench.check_parallel(rows)
    assert len(checks) == 30
    errors = [abs(r.in_sample - r.measured) / r.measured * 100 for r in checks]
    assert statistics.median(errors) <= 30.0
    # aggregate throughput grows with streams in the data and in the model, for every model
    for model in {r.model for r in checks}:
        series = sorted((r.streams, r.measured, r.in_sample) for r in checks if r.model == model)
        assert [m for _, m, _ in series] == sorted(m for _, m, _ in series)
        assert [p for _, _, p in series] == sorted(p for _, _, p in series)


def test_held_out_is_not_better_than_in_sample(rows: list[object]) -> None:
    # a leak from test rows into the fit would show as held-out error at or below in-sample error
    for kind in ("decode", "prefill"):
        in_sample = statistics.median(_ape(rows, kind, "in_sample"))
        assert statistics.median(_ape(rows, kind, "predicted")) > in_sample
        assert statistics.median(_ape(rows, kind, "held_model")) > in_sample


def test_depth_slows_decode_in_the_data_and_the_model(rows: list[object]) -> None:
    deep = [r for r in rows if r.kind == "decode" and r.test in ("tg32 @ d32768",)]  # type: ignore[attr-defined]
    shallow = [r for r in rows if r.kind == "decode" and r.test == "tg32"]  # type: ignore[attr-defined]
    assert deep and shallow
    measured = deep[0].measured / shallow[0].measured  # type: ignore[attr-defined]
    predicted = deep[0].in_sample / shallow[0].in_sample  # type: ignore[attr-defined]
    assert measured < 1 and predicted < 1
    assert abs(predicted - measured) < 0.15


def test_shipped_calibration_matches_a_fresh_fit(rows: list[object]) -> None:
    fresh = bench.fit(rows)
    shipped = speed.load_calibration()
    assert set(shipped.backends) == set(fresh.backends)
    for backend, factors in fresh.backends.items():
        for f in dataclasses.fields(speed.Factors):
            a, b = getattr(factors, f.name), getattr(shipped.backends[backend], f.name)
            assert a == pytest.approx(b, rel=1e-3, abs=1e-9), (backend, f.name)
    for family, scale in fresh.family_scale.items():
        assert shipped.scale(family) == pytest.approx(scale, rel=1e-3)
