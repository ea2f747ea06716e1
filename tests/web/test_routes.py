"""Every route of the website answers, in-process, with the right type and the catalog's content."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import yaml

from servefit.web import urls
from servefit.web.data import Combination, SiteData

from .conftest import Client


def test_home_lists_models_and_search_form(client: Client, site: SiteData) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<form class="search-form" action="/search" method="get"' in r.text
    for m in site.models:
        assert urls.model_url(m.id) in r.text


def test_search_finds_a_model_and_hardware_without_js(client: Client, site: SiteData) -> None:
    model = site.models[0]
    word = model.name.split()[0]
    r = client.get("/search", params={"q": word})
    assert r.status_code == 200
    assert urls.model_url(model.id) in r.text
    target = next(t for t in site.targets if t.provider)
    r = client.get("/search", params={"q": target.provider})
    assert urls.hardware_url(target.id) in r.text
    empty = client.get("/search", params={"q": "zzqx-no-such-thing"})
    assert empty.status_code == 200
    assert "No model matches" in empty.text


def test_models_index_and_model_page(client: Client, site: SiteData) -> None:
    r = client.get("/models")
    assert r.status_code == 200
    for m in site.models:
        assert urls.model_url(m.id) in r.text
    for m in [site.model("qwen3-8b"), next(m for m in site.models if m.is_moe and m.published_quants)]:
        page = client.get(urls.model_url(m.id))
        assert page.status_code == 200, m.id
        assert m.name in page.text
        for row in site.ladder(m):  # the whole ladder with sizes
            assert f">{row.name}<" in page.text
        for q in m.published_quants:
            assert f"{urls.model_url(m.id)}/{urls.quant_slug(q)}" in page.text


def test_quant_page_links_every_target(client: Client, site: SiteData) -> None:
    model = next(m for m in site.models if m.published_quants)
    quant = model.published_quants[0]
    r = client.get(f"{urls.model_url(model.id)}/{urls.quant_slug(quant)}")
    assert r.status_code == 200
    for t in site.targets:
        assert urls.deploy_url(model.id, quant, t.id) in r.text


def test_hardware_pages(client: Client, site: SiteData) -> None:
    r = client.get("/hardware")
    assert r.status_code == 200
    for t in site.targets:
        assert urls.hardware_url(t.id) in r.text
    target = next(t for t in site.targets if "/" in t.id)
    page = client.get(urls.hardware_url(target.id))
    assert page.status_code == 200
    assert target.name in page.text
    for m in site.models:
        if m.published_quants:
            assert f'href="/deploy/{m.id}/' in page.text


def test_deploy_page_sections(client: Client, site: SiteData, sample: list[Combination]) -> None:
    for c in sample[:20]:
        r = client.get(urls.deploy_url(c.model.id, c.quant, c.target.id))
        assert r.status_code == 200, (c.model.id, c.quant, c.target.id)
        body = r.text
        for section in (
            "Overview",
            "Hardware requirements",
            "Performance",
            "Memory per device",
            "Deploy",
            "Frequently asked questions",
        ):
            assert f">{section}</h2>" in body
        assert '"@type": "FAQPage"' in body
        assert "<svg" in body


def test_values_file_is_yaml_for_a_deployable_plan(client: Client, site: SiteData, sample: list[Combination]) -> None:
    found = 0
    for c in sample:
        plan = site.plan(c.model.id, c.quant, c.target.id)
        if not plan.fits or plan.backend == "metal":
            continue
        r = client.get(urls.values_url(c.model.id, c.quant, c.target.id))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/yaml")
        doc = yaml.safe_load(r.text)
        assert doc["model"]["quant"] == plan.quant
        assert doc["servefit"]["target"] == plan.target_id
        found += 1
    assert found > 0


def test_values_file_of_a_gpu_class_has_the_class_address(client: Client, site: SiteData) -> None:
    """``/values/{model}/{quant}/{class}.yaml``: GPU classes are targets, so their values sit at the class id."""
    cls = next(t for t in site.targets if t.gpu_class and t.id == t.gpu_class)
    for model in site.models:
        for quant in model.published_quants:
            if site.plan(model.id, quant, cls.id).fits:
                r = client.get(f"/values/{model.id}/{urls.quant_slug(quant)}/{cls.gpu_class}.yaml")
                assert r.status_code == 200
                return
    raise AssertionError("no fitting plan on a GPU class")


def test_api_plan_json(client: Client, site: SiteData) -> None:
    model = next(m for m in site.models if m.published_quants)
    quant = model.published_quants[0]
    target = site.targets[0]
    r = client.get("/api/plan", params={"model": model.id, "quant": quant, "target": target.id})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc == json.loads(json.dumps(site.plan(model.id, quant, target.id).to_dict(), default=str))
    ctx = client.get("/api/plan", params={"model": model.id, "quant": quant, "target": target.id, "context": "4096"})
    assert ctx.status_code == 200
    if ctx.json()["fits"]:
        assert ctx.json()["context"] == 4096
    static = client.get(urls.api_plan_url(model.id, quant, target.id))
    assert static.status_code == 200
    assert static.json() == doc


def test_api_plan_accepts_resolver_targets(client: Client, site: SiteData) -> None:
    model = next(m for m in site.models if m.published_quants)
    r = client.get("/api/plan", params={"model": model.id, "quant": model.published_quants[0], "target": "2xl4"})
    assert r.status_code == 200, r.text
    assert len([d for d in r.json()["devices"] if d["kind"] == "gpu"]) == 2


def test_healthz_sitemap_robots_static(client: Client, site: SiteData) -> None:
    h = client.get("/healthz")
    assert h.status_code == 200
    assert h.json()["status"] == "ok"
    sm = client.get("/sitemap.xml")
    assert sm.status_code == 200
    ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    maps = [e.text or "" for e in ET.fromstring(sm.text).iter(f"{ns}loc")]
    assert maps[0] == "https://servefit.example/sitemaps/pages.xml"
    total = 0
    for loc in maps:
        part = client.get(loc.removeprefix("https://servefit.example"))
        assert part.status_code == 200, loc
        locs = [e.text or "" for e in ET.fromstring(part.text).iter(f"{ns}loc")]
        assert len(locs) == len(set(locs)) <= 50_000
        assert all(x.startswith("https://servefit.example/") for x in locs)
        total += len(locs) if loc != maps[0] else 0
    assert total == site.count_combinations()
    assert client.get("/robots.txt").status_code == 200
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert client.get("/static/app.js").status_code == 200


def test_canonical_redirects(client: Client, site: SiteData) -> None:
    model = next(m for m in site.models if m.published_quants)
    quant = model.published_quants[0]
    target = next(t for t in site.targets if "/" in t.id)
    r = client.get(f"/deploy/{model.id.upper()}/{quant.upper()}/{target.id.upper()}")
    assert r.status_code == 301
    assert r.headers["location"] == urls.deploy_url(model.id, quant, target.id)


def test_search_naming_a_model_and_a_target_links_deploy_pages(client: Client, site: SiteData) -> None:
    r = client.get("/search", params={"q": "qwen3-8b scaleway l4-2-24g"})
    assert r.status_code == 200
    quant = site.default_quant(site.model("qwen3-8b"))
    assert quant is not None
    assert f'href="{urls.deploy_url("qwen3-8b", quant, "scaleway/l4-2-24g")}"' in r.text
