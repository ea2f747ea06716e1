"""The planner's and the speed estimate's fast paths against slower references.

Each fast path (memo tables keyed by signatures, the walked -ts split, run-by-run placements, the
Plan built from its dict) must give exactly what the plain computation gives: plans are compared as
their JSON bytes, made from cold memo tables one by one and made in a row with the tables kept.
"""

from __future__ import annotations

import json
import random

import pytest

from servefit import planner, speed
from servefit.catalog.models import model_spec
from servefit.hardware import list_targets, resolve_target
from servefit.machine import Machine
from servefit.memory import clear_caches, context_cells
from servefit.model import ModelSpec
from servefit.plan import GIB, FlashAttn, Options, Plan
from servefit.planner import make_plan

MODELS = (
    ("llama-3.1-8b-instruct", "Q4_K_M"),  # dense
    ("nemotron-3-super-120b-a12b", "Q4_K_S"),  # hybrid Mamba-2 MoE
    ("gemma-3-12b-it", "Q4_K_M"),  # sliding window
    ("gpt-oss-20b", "MXFP4_MOE"),  # sliding window + MoE
)
OPTIONS = (
    Options(context=4096),
    Options(context=32768),
    Options(),
    Options(parallel=4, context=16384),
    Options(batch=4096, ubatch=1024),  # SWA cells depend on the ubatch: so do the -ts splits
    Options(cache_type_k="q8_0", cache_type_v="q8_0", flash_attn=FlashAttn.ON),
    Options(n_cpu_moe=6),
    Options(gpu_layers=12, context=8192),
)


@pytest.fixture(scope="module")
def specs() -> list[ModelSpec]:
    return [model_spec(m, q) for m, q in MODELS]


def _machines() -> list[Machine]:
    catalog = list(list_targets())
    out = catalog[::9]
    out += [resolve_target(n) for n in ("cpu", "dgx-spark", "mac-studio-m4-max-128gb", "2xL4", "4xL40S")]
    # the same GPU with other CPUs and RAM: speed figures are shared where the host does not count
    out += [resolve_target(f"aws/g5.{size}") for size in ("xlarge", "4xlarge", "16xlarge")]
    # one GPU model with many RAM sizes: placement searches are shared across host budgets
    out += [resolve_target("rtx-4090", ram_bytes=r * GIB) for r in (8, 12, 16, 24, 32, 48, 64, 96, 128)]
    out += [resolve_target("2xL4", ram_bytes=r * GIB) for r in (16, 32, 48, 64, 128)]
    return out


def _text(spec: ModelSpec, machine: Machine, opts: Options) -> str:
    return json.dumps(make_plan(spec, machine, opts).to_dict(), sort_keys=True)


def test_plans_do_not_depend_on_memo_state(specs: list[ModelSpec]) -> None:
    """Every plan made with memo tables filled by earlier plans (in two orders) equals the one made cold."""
    cases = [(s, m, o) for s in specs for m in _machines() for o in OPTIONS]
    cold = []
    for spec, machine, opts in cases:
        clear_caches()
        cold.append(_text(spec, machine, opts))
    clear_caches()
    warm = [_text(s, m, o) for s, m, o in cases]
    order = list(range(len(cases)))
    random.Random(7).shuffle(order)
    clear_caches()
    shuffled = {i: _text(*cases[i]) for i in order}
    assert [i for i in range(len(cases)) if warm[i] != cold[i]] == []
    assert [i for i in range(len(cases)) if shuffled[i] != cold[i]] == []


def _reference_split(setup: planner._Setup, n_ctx: int, gpu_layers: int, n_cpu_moe: int) -> tuple[float, ...]:
    """The -ts layer counts by bisecting each GPU's boundary over the whole layer range."""
    prof = setup.prof
    n_layer = prof.n_layer
    start = max(n_layer + 1 - gpu_layers, 0)
    ctx = planner._context(setup, n_ctx)
    _n, cells, swa_cells = context_cells(ctx, prof.n_swa)
    n_stream = max(1, setup.n_seq)
    full_p, swa_p = prof.kv_row_prefix(ctx.type_k, ctx.type_v, ctx.flash_attn)
    rec = prof.recurrent_row_bytes * max(1, setup.n_seq)
    ncm = min(n_cpu_moe, n_layer)

    def cum(i: int) -> int:
        return (
            prof.dense.cuda[i]
            + prof.experts.cuda[i]
            - prof.experts.cuda[min(i, ncm)]
            + full_p[i] * cells * n_stream
            + swa_p[i] * swa_cells * n_stream
            + prof.recurrent_count[i] * rec
        )

    base = cum(start)
    total_cost = cum(n_layer) - base + prof.output.cuda
    free = [max(b - setup.overhead, 1) for b in setup.budgets]
    counts: list[int] = []
    prev, target = start, 0.0
    for g in range(setup.n_gpu - 1):
        target += total_cost * free[g] / sum(free)
        lo, hi = prev, n_layer
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cum(mid) - base <= target:
                lo = mid
            else:
                hi = mid - 1
        if lo < n_layer and (cum(lo + 1) - base) - target < target - (cum(lo) - base):
            lo += 1
        counts.append(lo - prev)
        prev = lo
    counts.append(n_layer + 1 - start - sum(counts))
    return tuple(float(c) for c in counts)


def test_split_walk_matches_bisection(specs: list[ModelSpec]) -> None:
    multi = [m for m in list(list_targets()) if len(m.devices) > 1][::3]
    multi.append(resolve_target("2xL4", vram_bytes=30 * GIB))  # unequal to the catalog's budgets
    checked = 0
    for spec in specs:
        for machine in multi:
            for opts in (Options(context=4096), Options(context=131072, parallel=2), Options(ubatch=64, context=8192)):
                setup = planner._setup(spec, machine, opts)
                n_layer = setup.prof.n_layer
                for ngl in (n_layer + 1, n_layer, n_layer // 2, 1):
                    for ncm in (0, 3, n_layer):
                        got = planner._compute_split(setup, setup.min_ctx, ngl, ncm)
                        assert got == _reference_split(setup, setup.min_ctx, ngl, ncm), (spec.model_id, machine.id)
                        checked += 1
    assert checked > 500


def _reference_ranges(layers: list[int]) -> tuple[int, list[tuple[int, int, int]]]:
    start = next((il for il, loc in enumerate(layers) if loc != speed.HOST), len(layers))
    ranges: list[tuple[int, int, int]] = []
    for il in range(start, len(layers)):
        if ranges and ranges[-1][0] == layers[il]:
            ranges[-1] = (layers[il], ranges[-1][1], il + 1)
        else:
            ranges.append((layers[il], il, il + 1))
    return start, ranges


def test_placement_runs_match_layer_loop(specs: list[ModelSpec]) -> None:
    for spec in specs:
        for machine in _machines():
            for opts in (Options(context=4096), Options(gpu_layers=9)):
                plan = make_plan(spec, machine, opts)
                place = speed._placement(plan, spec, machine)
                layers, output = speed.layer_locations(plan, spec, machine)
                start, ranges = _reference_ranges(layers)
                assert (place.start, list(place.ranges), place.output) == (start, ranges, output)
                assert place.used_devs == tuple(sorted({d for d in [*layers, output] if d != speed.HOST}))


def _figures(core: speed._Core) -> tuple[object, ...]:
    return (
        core.decode,
        core.decode_parallel,
        core.prefill,
        core.ttft_s,
        core.bottleneck,
        core.decode_step_s,
        core.prefill_s,
        core.calibration,
        core.expected_error,
    )


def test_core_memo_matches_direct_computation(specs: list[ModelSpec]) -> None:
    """The memoised speed figures (shared across machines with the same GPUs, and for plans reading from
    disk) equal the figures computed for the plan itself."""
    machines = [*_machines(), resolve_target("rtx-4090", ram_bytes=4 * GIB)]  # reads from disk
    clear_caches()
    seen_disk = 0
    for spec in specs:
        for machine in machines:
            for opts in (Options(context=4096), Options(), Options(parallel=4, context=16384)):
                plan = make_plan(spec, machine, opts)
                if not plan.fits:
                    continue
                seen_disk += plan.reading_from_disk
                prompt = min(plan.prompt_tokens, plan.context)
                memo = speed._core(plan, spec, machine, prompt)
                direct = speed._compute_core(plan, spec, machine, prompt)
                assert _figures(memo) == _figures(direct), (spec.model_id, machine.id, opts)
    assert seen_disk > 0


def test_plan_from_dict_equals_constructor(specs: list[ModelSpec]) -> None:
    plan = make_plan(specs[0], resolve_target("2xL4"), Options(context=8192))
    state = {name: getattr(plan, name) for name in Plan.__dataclass_fields__}
    built = planner._new_plan(dict(state))
    assert built == Plan(**state)
    assert built.to_dict() == Plan(**state).to_dict()
    with pytest.raises(TypeError):  # a field too many goes to the constructor, which refuses it
        planner._new_plan({**state, "no_such_field": 1})


def _sweep() -> list[Machine]:
    """GPUs of one size with many RAM sizes and GPU names: what makes searches share (or wrongly share)."""
    out: list[Machine] = []
    for ram in (4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 128, 192):
        for name in ("aws/g5.xlarge", "aws/g6.xlarge"):  # NVIDIA A10G and L4, made the same size
            out.append(resolve_target(name, vram_bytes=24 * GIB, ram_bytes=ram * GIB))
        out.append(resolve_target("2xL4", ram_bytes=ram * GIB))
    return out


def test_searches_shared_across_ram_and_gpu_names(specs: list[ModelSpec]) -> None:
    """Searches memoised over host-budget intervals, with reasons written in per machine (``_reasons``) and
    GPU-bound secant steps (``_slack``), give each machine's cold plan: its own GPU names and RAM in the
    reasons, in both planning orders."""
    cases = [(s, m, o) for s in specs for m in _sweep() for o in (Options(context=8192), Options())]
    cold = []
    for case in cases:
        clear_caches()
        cold.append(_text(*case))
    for order in (cases, cases[::-1]):
        clear_caches()
        warm = {id(c): _text(*c) for c in order}
        assert [i for i, c in enumerate(cases) if warm[id(c)] != cold[i]] == []
    names = [json.loads(t)["reasons"] for t in cold]
    assert any("A10G" in " ".join(r) for r in names) and any("NVIDIA L4" in " ".join(r) for r in names)
    assert any("usable RAM" in " ".join(r) for r in names)


def test_hopeless_gallop_matches_the_full_gallop(specs: list[ModelSpec], monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping the --n-cpu-moe / -ngl gallop where the host is already over budget (``_host_bound``) finds
    what galloping on to the end finds."""
    cases = [(s, m, o) for s in specs for m in _sweep() + _machines() for o in (Options(context=4096), Options())]
    fired = 0
    original = planner._guided_smallest

    def counting(lo: int, hi: int, guess: int, ok: object, hopeless: object = None) -> int | None:
        nonlocal fired
        result = original(lo, hi, guess, ok, hopeless)  # type: ignore[arg-type]
        if result is None and hopeless is not None and hopeless(min(max(guess, lo), hi)):  # type: ignore[operator]
            fired += 1
        return result

    monkeypatch.setattr(planner, "_guided_smallest", counting)
    fast = []
    for case in cases:
        clear_caches()
        fast.append(_text(*case))
    assert fired > 20

    def full(lo: int, hi: int, guess: int, ok: object, hopeless: object = None) -> int | None:
        return original(lo, hi, guess, ok)  # type: ignore[arg-type]

    monkeypatch.setattr(planner, "_guided_smallest", full)
    for i, case in enumerate(cases):
        clear_caches()
        assert _text(*case) == fast[i], (case[0].model_id, case[1].id, case[2])


def test_split_base_matches_layer_sums(specs: list[ModelSpec]) -> None:
    """The per-context prefix sums ``_split_base`` shares equal the dense, KV and recurrent bytes summed
    layer by layer."""
    for spec in specs:
        for opts in (Options(context=4096), Options(context=131072, parallel=3), Options(cache_type_k="q8_0")):
            setup = planner._setup(spec, resolve_target("4xL40S"), opts)
            prof = setup.prof
            ctx = planner._context(setup, setup.min_ctx)
            _n, cells, swa_cells = context_cells(ctx, prof.n_swa)
            full_p, swa_p = prof.kv_row_prefix(ctx.type_k, ctx.type_v, ctx.flash_attn)
            n_stream = max(1, setup.n_seq)
            base = planner._split_base(setup, ctx)
            rec = prof.recurrent_row_bytes * n_stream
            total = 0
            for i in range(prof.n_layer + 1):
                assert base[i] == total
                if i < prof.n_layer:
                    total += prof.dense.cuda[i + 1] - prof.dense.cuda[i]
                    total += (full_p[i + 1] - full_p[i]) * cells * n_stream
                    total += (swa_p[i + 1] - swa_p[i]) * swa_cells * n_stream
                    total += (prof.recurrent_count[i + 1] - prof.recurrent_count[i]) * rec


def test_device_rows_are_the_breakdown(specs: list[ModelSpec]) -> None:
    """The shared GPU rows of a plan's device table hold that plan's own breakdown and GPU names."""
    clear_caches()
    for spec in specs:
        for machine in _sweep()[:6] + _machines()[:10]:
            plan = make_plan(spec, machine, Options(context=8192))
            gpus = [d for d in plan.devices if d.kind == "gpu"]
            assert [d.name.split(" (", 1)[1] for d in gpus] == [f"{d.name})" for d in machine.devices[: len(gpus)]]
            assert sum(d.total_bytes for d in gpus) == plan.vram_used_bytes


def test_gpu_bound_slack_holds_over_its_recorded_budgets(specs: list[ModelSpec]) -> None:
    """A GPU-bound ``_slack`` records the least host budget for which it is the same (``host_floor``): at
    that budget it is unchanged, one byte below the host's slack takes over."""
    checked = 0
    for spec in specs:
        for machine in [resolve_target(name, ram_bytes=256 * GIB) for name in ("aws/g6.xlarge", "2xL4")]:
            for n_ctx in (4096, 65536):
                setup = planner._setup(spec, machine, Options())
                b = planner._probe(setup, n_ctx, setup.prof.n_layer + 1, 0)[1]
                value = planner._slack(setup, b, False)
                floor = setup.host_floor
                if setup.host_exact or floor <= 0:  # host-bound, or a bound below every budget
                    continue
                setup.host_budget = floor
                assert planner._slack(setup, b, False) == value
                assert not setup.host_exact
                setup.host_budget = floor - 1
                assert planner._slack(setup, b, False) < value
                assert setup.host_exact
                checked += 1
    assert checked >= 4


def test_cpu_moe_gpu_bytes_match_the_breakdown(specs: list[ModelSpec]) -> None:
    """The GPU bytes ``_try_cpu_moe`` predicts for one more or fewer layers of experts on the host equal the
    breakdown's, on one GPU holding every layer (the placements it skips are really over budget)."""
    checked = 0
    for spec in specs:
        for machine in (resolve_target("aws/g6.xlarge"), resolve_target("rtx-4090", ram_bytes=16 * GIB)):
            for opts in (Options(context=4096), Options(context=65536, parallel=2), Options(cache_type_k="q8_0")):
                setup = planner._setup(spec, machine, opts)
                prof = setup.prof
                if not prof.moe_layers:
                    continue
                full = prof.n_layer + 1
                first = prof.first_moe_layer + 1
                picks = sorted({first, first + 1, (first + prof.n_layer) // 2, prof.n_layer - 1, prof.n_layer})
                totals = {n: planner._probe(setup, setup.min_ctx, full, n)[1].gpu_total[0] for n in picks}
                for m in picks:
                    for n in picks:
                        got = planner._cpu_moe_gpu_bytes(prof.experts.cuda, m, totals[m], n)
                        assert got == totals[n], (spec.model_id, machine.id, opts, m, n)
                        checked += 1
    assert checked > 100
