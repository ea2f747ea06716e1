"""Every figure on a sample of deploy pages, read back from the HTML, equals the Plan JSON of /api/plan.

The page and the JSON are two renderers of one Plan: a disagreement between them is a bug. The
figures are parsed from what a reader sees ("73.59 GB", "12 / 48", "Yes"), not from page internals,
and checked against the JSON within the rounding of the displayed precision.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from servefit.web import urls
from servefit.web.data import Combination, SiteData

from .conftest import Client
from .pagedata import GB_RE, GIB_RE, DeployPage, decimals, number, parse_deploy_page

BYTES_FIELDS = ("model_bytes", "vram_total_bytes", "vram_used_bytes", "ram_total_bytes", "ram_required_bytes")


def _close_gb(text: str, nbytes: int) -> None:
    m = GB_RE.search(text)
    assert m, text
    shown = float(m.group(1).replace(",", ""))
    assert abs(shown * 1e9 - nbytes) <= 0.005e9 + 1, (text, nbytes)
    g = GIB_RE.search(text)
    if g:
        assert abs(float(g.group(1).replace(",", "")) * 2**30 - nbytes) <= 0.005 * 2**30 + 1, (text, nbytes)


def _close_rounded(text: str, value: float) -> None:
    shown = number(text)
    tolerance = 0.5 * 10 ** -decimals(text) + 1e-9
    if shown >= 0.1 or decimals(text) > 0:
        assert abs(shown - value) <= max(tolerance, abs(value) * 0.005), (text, value)


def _check_requirements(page: DeployPage, plan: dict[str, Any]) -> None:
    for name in BYTES_FIELDS:
        cell = page.cell(name, "requirements")
        assert int(cell.value) == plan[name]
        _close_gb(cell.text, plan[name])
    layers = page.cell("gpu_layers", "requirements")
    x, n = (int(v) for v in re.findall(r"\d+", layers.text)[:2])
    assert (x, n) == (plan["gpu_layers"], plan["total_layers"])
    ctx = page.cell("context", "requirements")
    assert int(ctx.text.split()[0].replace(",", "")) == plan["context"]
    assert page.cell("backend", "requirements").text == plan["backend"]
    assert page.cell("flash_attention", "requirements").text == ("Yes" if plan["flash_attention"] else "No")
    assert page.cell("reading_from_disk", "requirements").text == ("Yes" if plan["reading_from_disk"] else "No")
    strategy = page.cell("strategy", "requirements")
    assert strategy.value == (plan["strategy"] or "")
    if plan["strategy"]:
        assert strategy.text.endswith(plan["strategy"])
    experts = page.cell("experts_on_cpu_layers", "requirements")
    assert int(experts.text.split()[0]) == plan["experts_on_cpu_layers"]
    if plan["moe_layers"]:
        assert int(re.findall(r"\d+", experts.text)[1]) == plan["moe_layers"]


def _check_performance(page: DeployPage, plan: dict[str, Any]) -> None:
    if not plan["fits"]:
        assert not [c for c in page.cells if c.table == "performance"]
        return
    for name in ("decode_tok_s", "prefill_tok_s", "ttft_s", "cost_per_mtok", "price_per_hour"):
        cell = page.cell(name, "performance")
        if plan[name] is None:
            assert cell.text.startswith("—"), (name, cell.text)
            assert cell.value == ""
        else:
            _close_rounded(cell.text, float(plan[name]))
            if name in ("cost_per_mtok", "price_per_hour") and plan["currency"]:
                assert plan["currency"] in cell.text
    assert page.cell("bottleneck", "performance").text == (plan["bottleneck"] or "—")


def _check_devices(page: DeployPage, plan: dict[str, Any]) -> None:
    rows = {c.row for c in page.cells if c.table == "devices"}
    assert rows == set(range(len(plan["devices"])))
    for i, device in enumerate(plan["devices"]):
        for c in page.cells:
            if c.table == "devices" and c.row == i:
                assert int(c.value) == device[c.field], (c.field, device)
                _close_gb(c.text, device[c.field])


def _check_prose(page: DeployPage, plan: dict[str, Any]) -> None:
    """The overview sentence and headline state only what the plan (and so the table) says."""
    sentence = page.fit_sentence
    allowed = [plan[f] for f in BYTES_FIELDS]
    for m in GB_RE.finditer(sentence):
        shown = float(m.group(1).replace(",", "")) * 1e9
        assert any(abs(shown - v) <= 0.005e9 + 1 for v in allowed), (m.group(0), sentence)
    for m in re.finditer(r"([\d,]+) tokens", sentence):
        assert int(m.group(1).replace(",", "")) == plan["context"], sentence
    assert ("does not run" in sentence) == (not plan["fits"]), sentence
    assert page.fit_attrs["data-fits"] == str(plan["fits"]).lower()
    full = re.search(r"all (\d+) layers run on", sentence)
    if full:
        assert plan["strategy"] == "gpu"
        assert int(full.group(1)) == plan["total_layers"] == plan["gpu_layers"]
        assert plan["experts_on_cpu_layers"] == 0
    if plan["strategy"] == "gpu":
        assert full, sentence
    moe = re.search(r"--n-cpu-moe (\d+)", sentence)
    assert bool(moe) == (plan["fits"] and plan["strategy"] == "gpu+cpu-moe"), sentence
    if moe:
        assert int(moe.group(1)) == plan["n_cpu_moe"]
    partial = re.search(r"Only (\d+) of (\d+) layers", sentence)
    assert bool(partial) == (plan["fits"] and plan["strategy"] == "partial-offload"), sentence
    if partial:
        assert (int(partial.group(1)), int(partial.group(2))) == (plan["gpu_layers"], plan["total_layers"])
    if "runs on the CPU only" in sentence:
        assert plan["strategy"] == "cpu"
        assert plan["gpu_layers"] == 0
    assert "from disk (memory-mapped)" in sentence or not (plan["fits"] and plan["strategy"] == "disk")
    if plan["fits"] and plan["strategy"] == "disk" and plan["gpu_layers"]:
        # on a GPU machine the GPUs stay full: the sentence gives the layers they run
        assert f"{plan['gpu_layers']} of {plan['total_layers']} layers run on" in sentence, sentence
    h1 = page.h1
    assert plan["model_name"] in h1 and plan["quant"] in h1
    if plan["fits"] and plan["vram_used_bytes"] > 0:
        _close_gb(h1, plan["vram_used_bytes"])
    if not plan["fits"]:
        assert "does not fit" in h1


def _check_faq(page: DeployPage, plan: dict[str, Any]) -> None:
    ld = [d for d in page.json_ld if d.get("@type") == "FAQPage"]
    assert len(ld) == 1
    questions = [q["name"] for q in ld[0]["mainEntity"]]
    assert questions == page.faq_questions
    answers = " ".join(q["acceptedAnswer"]["text"] for q in ld[0]["mainEntity"])
    allowed = [plan[f] for f in BYTES_FIELDS]
    for m in GB_RE.finditer(answers):
        shown = float(m.group(1).replace(",", "")) * 1e9
        assert any(abs(shown - v) <= 0.005e9 + 1 for v in allowed), m.group(0)


def _check_headings(page: DeployPage) -> None:
    levels = [level for level, _ in page.headings]
    assert levels[0] == 1 and levels.count(1) == 1
    for a, b in itertools.pairwise(levels):
        assert b <= a + 1, page.headings


@pytest.mark.slow
def test_deploy_pages_agree_with_plan_json(client: Client, site: SiteData, sample: list[Combination]) -> None:
    assert len(sample) >= 20
    kinds: set[str] = set()
    for c in sample:
        path = urls.deploy_url(c.model.id, c.quant, c.target.id)
        r = client.get(path)
        assert r.status_code == 200, path
        page = parse_deploy_page(r.text)
        api = client.get("/api/plan", params={"model": c.model.id, "quant": c.quant, "target": c.target.id})
        assert api.status_code == 200
        plan = api.json()
        kinds.add(plan["strategy"] if plan["fits"] else "no-fit")
        _check_requirements(page, plan)
        _check_performance(page, plan)
        _check_devices(page, plan)
        _check_prose(page, plan)
        _check_faq(page, plan)
        _check_headings(page)
        if plan["fits"] and page.values_href:
            assert page.values_href == urls.values_url(c.model.id, c.quant, c.target.id)
            values = client.get(page.values_href)
            assert values.status_code == 200
            assert values.text == page.values_text
            assert f"curl -fsSL https://servefit.example{page.values_href})" in r.text or (
                f"https://servefit.example{page.values_href}" in r.text
            )
    assert "gpu" in kinds and len(kinds) >= 4, kinds
