"""The speed model's physics: each test states a direction the real hardware obeys and can fail."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_module import load_speed_bench
from servefit import speed
from servefit.errors import CatalogError, OptionsError
from servefit.machine import Backend, Device, Machine
from servefit.model import ModelSpec
from servefit.plan import GIB, Plan, Strategy

bench = load_speed_bench()

# Same skeleton, same total bytes: 32 experts of width 2880 (4 used) against one dense FFN of 32 x 2880.
MOE = bench.Arch("moe-test", "gpt-oss", 24, 2880, 64, 8, 64, 0, 201088, n_expert=32, n_expert_used=4, n_ff_exp=2880)
DENSE = bench.Arch("dense-test", "llama", 24, 2880, 64, 8, 64, 32 * 2880, 201088)


def spec_of(arch: object, quant: str = "F16", file_bytes: int = 0) -> ModelSpec:
    out: ModelSpec = bench.model_spec(arch, quant, file_bytes)
    return out


def gpu(bandwidth_gb_s: float = 300.0, memory_gib: int = 96, tflops: float = 121.0) -> Device:
    return Device("NVIDIA L4", "nvidia-l4", memory_gib * GIB, bandwidth_gb_s, tflops, 2 * tflops, "8.9", 25.0)


def machine(*devices: Device, price: float | None = 1.0, ram_gb_s: float = 50.0, cores: int = 16) -> Machine:
    return Machine(
        id="test/target",
        name="test target",
        devices=tuple(devices),
        host_ram_bytes=256 * GIB,
        cpu_cores=cores,
        backend=Backend.CUDA12 if devices else Backend.CPU,
        ram_bandwidth_gb_s=ram_gb_s,
        disk_read_gb_s=2.0,
        price_per_hour=price,
        currency="EUR" if price is not None else "",
    )


def plan_for(spec: ModelSpec, m: Machine, **changes: object) -> Plan:
    base: Plan = bench.bench_plan(spec, m, flash=True, batch=2048, ubatch=512, context=32768)
    base = dataclasses.replace(base, strategy=Strategy.GPU if m.devices else Strategy.CPU, prompt_tokens=4096)
    if not m.devices:
        base = dataclasses.replace(base, gpu_layers=0, tensor_split=())
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def run(spec: ModelSpec, m: Machine, **changes: object) -> Plan:
    return speed.estimate(plan_for(spec, m, **changes), spec, m)


def decode(p: Plan) -> float:
    assert p.decode_tok_s is not None
    return p.decode_tok_s


def prefill(p: Plan) -> float:
    assert p.prefill_tok_s is not None
    return p.prefill_tok_s


# ------------------------------------------------------------------------------------------
# physics


def test_moe_decodes_faster_than_dense_of_same_size() -> None:
    moe, dense = spec_of(MOE), spec_of(DENSE)
    assert abs(moe.tensor_bytes - dense.tensor_bytes) / dense.tensor_bytes < 0.01  # same total size
    m = machine(gpu())
    fast, slow = decode(run(moe, m)), decode(run(dense, m))
    # 4 of 32 experts read per token: the MoE reads far fewer bytes, so it is much faster
    assert fast > 2.0 * slow


def test_experts_on_host_are_slower_than_all_on_gpu() -> None:
    spec = spec_of(MOE)
    m = machine(gpu())
    on_gpu = run(spec, m)
    on_host = run(spec, m, n_cpu_moe=spec.hparams.n_layer)
    assert decode(on_host) < decode(on_gpu)
    assert prefill(on_host) < prefill(on_gpu)
    assert on_host.bottleneck.startswith("host RAM bandwidth: 24 of 24 expert layers on CPU")
    assert "PCIe: experts copied per micro-batch" in on_host.bottleneck
    some = run(spec, m, n_cpu_moe=8)
    assert decode(on_host) < decode(some) < decode(on_gpu)


def test_more_bandwidth_is_faster_decode() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    slow, fast = run(spec, machine(gpu(300.0))), run(spec, machine(gpu(900.0)))
    assert decode(fast) > 1.5 * decode(slow)
    assert slow.bottleneck == "GPU memory bandwidth (NVIDIA L4)"


def test_more_flops_is_faster_prefill() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    slow, fast = run(spec, machine(gpu(tflops=60.0))), run(spec, machine(gpu(tflops=240.0)))
    assert prefill(fast) > 1.3 * prefill(slow)


def test_deeper_context_decodes_slower() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    m = machine(gpu())
    short, long = run(spec, m, prompt_tokens=256), run(spec, m, prompt_tokens=32768)
    assert decode(long) < decode(short)
    # KV read per token at depth 32768 with FA: 32 layers x 8 heads x 128 x 2 (K, V) x 2 bytes x 32768
    kv_bytes = 32 * 8 * 128 * 2 * 2 * 32768
    assert 1 / decode(long) - 1 / decode(short) > 0.5 * kv_bytes / (300e9)  # at least half the ideal read time


def test_sliding_window_layers_do_not_grow_with_depth() -> None:
    spec = spec_of(bench.ARCHS["gpt-oss 20B MXFP4 MoE"], "MXFP4", bench.GPT_OSS_20B_BYTES)
    m = machine(gpu())
    t0 = speed.decode_terms(plan_for(spec, m), spec, m, depth=1024).gpu_attn_s
    t1 = speed.decode_terms(plan_for(spec, m), spec, m, depth=2048).gpu_attn_s
    # half the layers are 128-token windows: doubling depth grows the KV read by less than 2x
    assert t0 < t1 < 2 * t0


def test_cost_follows_price_and_throughput() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    p = run(spec, machine(gpu(), price=2.5), parallel=4)
    assert p.price_per_hour == 2.5 and p.currency == "EUR"
    assert p.cost_per_mtok == pytest.approx(2.5 / (decode(p) * 3600) * 1e6)
    assert p.decode_tok_s_parallel is not None and p.cost_per_mtok_parallel is not None
    assert p.cost_per_mtok_parallel == pytest.approx(2.5 / (p.decode_tok_s_parallel * 3600) * 1e6)
    unpriced = run(spec, machine(gpu(), price=None))
    assert unpriced.cost_per_mtok is None and unpriced.price_per_hour is None
    assert speed.cost_per_mtok(1.0, 0.0) is None


@pytest.mark.parametrize("arch", [DENSE, MOE])
def test_parallel_aggregate_at_least_one_stream(arch: object) -> None:
    spec = spec_of(arch)
    m = machine(gpu())
    one = run(spec, m, parallel=1)
    many = run(spec, m, parallel=8)
    assert many.decode_tok_s_parallel is not None
    assert decode(one) < many.decode_tok_s_parallel <= 8 * decode(one) + 1e-9
    assert many.decode_tok_s == pytest.approx(decode(one))


def test_moe_parallel_streams_touch_more_experts() -> None:
    spec = spec_of(MOE)
    m = machine(gpu())
    one = speed.decode_terms(plan_for(spec, m), spec, m, depth=0)
    eight = speed.decode_terms(plan_for(spec, m), spec, m, depth=0, streams=8)
    # 8 tokens touch 1 - (1 - 4/32)^8 = 66% of the experts, not 8 x 12.5% = 100%
    assert one.gpu_float_s < eight.gpu_float_s < 8 * one.gpu_float_s


def test_reading_from_disk_is_slowest_and_named() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    cpu = machine(cores=16)
    in_ram = run(spec, cpu, strategy=Strategy.CPU)
    from_disk = run(
        spec,
        cpu,
        strategy=Strategy.DISK,
        reading_from_disk=True,
        ram_total_bytes=2 * GIB,
        ram_required_bytes=spec.tensor_bytes,
    )
    assert decode(from_disk) < decode(in_ram)
    assert from_disk.bottleneck == "disk: weights read from disk"
    assert in_ram.bottleneck == "host RAM bandwidth: CPU only (16 cores)"


def test_cpu_decode_scales_with_ram_bandwidth_until_cores_limit() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    slow = decode(run(spec, machine(ram_gb_s=50.0, cores=64), strategy=Strategy.CPU))
    fast = decode(run(spec, machine(ram_gb_s=200.0, cores=64), strategy=Strategy.CPU))
    few_cores = decode(run(spec, machine(ram_gb_s=200.0, cores=2), strategy=Strategy.CPU))
    assert fast > 2 * slow
    assert few_cores < fast


def test_partial_offload_sits_between_gpu_and_cpu() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    m = machine(gpu())
    full = decode(run(spec, m))
    half = run(spec, m, gpu_layers=17, strategy=Strategy.PARTIAL_OFFLOAD)
    cpu = decode(run(spec, machine(), strategy=Strategy.CPU))
    assert cpu < decode(half) < full
    assert half.bottleneck == "host RAM bandwidth: 16 of 32 layers on CPU"


def test_layer_split_over_two_gpus_pays_a_hop() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    one, two = machine(gpu()), machine(gpu(), gpu())
    terms = speed.decode_terms(plan_for(spec, two), spec, two, depth=0)
    assert terms.hops == 1
    assert decode(run(spec, two)) <= decode(run(spec, one))
    # prompt processing pipelines micro-batches over the two GPUs
    assert prefill(run(spec, two, prompt_tokens=4096)) > prefill(run(spec, one, prompt_tokens=4096))


def test_layer_placement_follows_llama_cpp() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    m = machine(gpu(), gpu())
    layers, output = speed.layer_locations(plan_for(spec, m), spec, m)
    # 33 offloadable layers (32 + output) split at 0.5: layer il goes to upper_bound(splits, il / 33)
    assert layers == [0] * 17 + [1] * 15 and output == 1
    # -ngl 1: only the output layer is offloaded (i_gpu_start = n_layer + 1 - ngl)
    layers, output = speed.layer_locations(plan_for(spec, m, gpu_layers=1, total_layers=33), spec, m)
    assert set(layers) == {speed.HOST} and output == 0
    # a 3:1 tensor split
    layers, _ = speed.layer_locations(plan_for(spec, m, tensor_split=(3.0, 1.0)), spec, m)
    assert layers.count(0) == 25 and layers.count(1) == 7


def test_plan_that_does_not_fit_gets_no_speed() -> None:
    spec = spec_of(DENSE)
    m = machine(gpu())
    p = speed.estimate(plan_for(spec, m, fits=False, strategy=None), spec, m)
    assert p.decode_tok_s is None and p.prefill_tok_s is None and p.cost_per_mtok is None
    assert p.price_per_hour == 1.0 and p.prompt_tokens == 4096


def test_estimate_reports_its_expected_error_and_ttft() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    p = run(spec, machine(gpu()))
    assert p.ttft_s == pytest.approx(4096 / prefill(p) + 1 / decode(p))
    info = p.extra["speed"]
    assert info["decode_depth_tokens"] == 4096
    assert "decode_median_pct" in info["expected_error"]
    assert p.to_dict()["decode_tok_s"] == p.decode_tok_s


# ------------------------------------------------------------------------------------------
# calibration file


def test_calibration_file_rejects_bad_input() -> None:
    with pytest.raises(CatalogError, match="unknown factors"):
        speed.parse_calibration("backends:\n  cuda: {warp_speed: 3}\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        speed.parse_calibration("backends: [")
    with pytest.raises(CatalogError, match="family_scale"):
        speed.parse_calibration("family_scale: {cuda-ada: -1}\n")
    with pytest.raises(CatalogError, match="top level"):
        speed.parse_calibration("- 1\n")


def test_unknown_sort_is_an_options_error() -> None:
    with pytest.raises(OptionsError, match="unknown sort 'fastest'"):
        speed.compare("any-model", "Q4_K_M", sort="fastest")


# ------------------------------------------------------------------------------------------
# any placement: finite, positive, consistent


@settings(max_examples=60, deadline=None)
@given(
    bandwidth=st.floats(50.0, 8000.0),
    tflops=st.floats(5.0, 2500.0),
    n_cpu_moe=st.integers(0, 24),
    gpu_layers=st.integers(0, 25),
    parallel=st.integers(1, 64),
    prompt=st.integers(1, 131072),
    gpus=st.integers(1, 4),
    flash=st.booleans(),
)
def test_any_placement_gives_sane_figures(
    bandwidth: float, tflops: float, n_cpu_moe: int, gpu_layers: int, parallel: int, prompt: int, gpus: int, flash: bool
) -> None:
    spec = _GPT_OSS
    m = machine(*[gpu(bandwidth, tflops=tflops)] * gpus, price=1.5)
    p = run(spec, m, n_cpu_moe=n_cpu_moe, gpu_layers=gpu_layers, parallel=parallel, prompt_tokens=prompt,
            flash_attention=flash)  # fmt: skip
    one, many, pre = decode(p), p.decode_tok_s_parallel, prefill(p)
    assert many is not None and p.ttft_s is not None and p.cost_per_mtok is not None
    for value in (one, many, pre, p.ttft_s):
        assert math.isfinite(value) and value > 0
    assert one <= many * (1 + 1e-9) <= parallel * one * (1 + 1e-9)
    assert p.prompt_tokens == min(prompt, p.context)
    assert p.bottleneck
    assert p.cost_per_mtok == pytest.approx(1.5 / (one * 3600) * 1e6)


_GPT_OSS = spec_of(bench.ARCHS["gpt-oss 20B MXFP4 MoE"], "MXFP4", bench.GPT_OSS_20B_BYTES)


def test_reading_from_disk_slows_prefill_too() -> None:
    spec = spec_of(bench.ARCHS["Meta-Llama-3-8B"], "Q4_K_M", int(4.58 * GIB))
    cpu = machine(cores=16)
    in_ram = run(spec, cpu, strategy=Strategy.CPU)
    disk = dict(reading_from_disk=True, ram_total_bytes=2 * GIB, ram_required_bytes=spec.tensor_bytes)
    from_disk = run(spec, cpu, strategy=Strategy.DISK, **disk)
    assert prefill(from_disk) < prefill(in_ram)


# --------------------------------------------------------------------------------------------
# the fast sums against the reference per-tensor-group loops


def _reference_estimate(plan: Plan, spec: ModelSpec, machine: Machine, monkeypatch: pytest.MonkeyPatch) -> Plan:
    """speed.estimate with every memo table bypassed: the per-group reference loops only."""
    with monkeypatch.context() as mp:
        mp.setattr(speed, "_fast", lambda _spec: None)
        return speed.estimate(plan, spec, machine)


@pytest.mark.parametrize(
    ("model_id", "quant"),
    [("nemotron-3-super-120b-a12b", "Q4_K_S"), ("llama-3.1-8b-instruct", "Q4_K_M"), ("gemma-3-27b-it", "Q4_K_M")],
)
def test_fast_sums_equal_the_reference_loops(model_id: str, quant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fast path must give the very same floats (it performs the same additions in the same order):
    # every placement strategy, several GPUs, parallel streams, partial offload and CPU-only plans.
    from servefit.catalog.models import model_spec
    from servefit.hardware import list_targets, resolve_target
    from servefit.plan import Options
    from servefit.planner import make_plan

    spec = model_spec(model_id, quant)
    targets = [*list(list_targets())[::9], resolve_target("cpu"), resolve_target("2xl4", vram_bytes=6 * GIB)]
    strategies = set()
    for machine in targets:
        for options in (Options(context=8192), Options(context=None, parallel=3), Options(context=4096, ubatch=16)):
            plan = make_plan(spec, machine, options)
            strategies.add(plan.strategy)
            reference = _reference_estimate(plan, spec, machine, monkeypatch)
            assert plan.to_dict() == reference.to_dict(), (machine.id, options)
            # and the fast tables, once filled, give the same again
            assert speed.estimate(plan, spec, machine).to_dict() == reference.to_dict()
    assert len(strategies) >= 2


def test_fast_sums_fall_back_when_layers_are_interleaved(monkeypatch: pytest.MonkeyPatch) -> None:
    # A file whose tensors are not grouped by layer (layer 1 before layer 0) cannot be summed by runs:
    # the reference loop is used, and the figures do not depend on the tensor order.
    from servefit.catalog.models import model_spec
    from servefit.hardware import resolve_target
    from servefit.planner import make_plan

    spec = model_spec("llama-3.1-8b-instruct", "Q4_K_M")
    first = [t for t in spec.tensors if t.layer == 0]
    second = [t for t in spec.tensors if t.layer == 1]
    rest = [t for t in spec.tensors if t.layer not in (0, 1)]
    shuffled = dataclasses.replace(spec, tensors=(*second, *first, *rest))
    assert speed._fast(shuffled) is None
    assert speed._fast(spec) is not None
    machine = resolve_target("rtx-4090")
    a = make_plan(spec, machine)
    b = make_plan(shuffled, machine)
    assert a.decode_tok_s == pytest.approx(b.decode_tok_s, rel=1e-12)
    assert a.prefill_tok_s == pytest.approx(b.prefill_tok_s, rel=1e-12)
