"""Bad input: unknown ids give 404 with suggestions, malformed or oversize values 400, never a traceback."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servefit.web import urls
from servefit.web.data import SiteData

from .conftest import Client


def _no_leak(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    assert "servefit/web/" not in text


def test_unknown_model_404_suggests_close_ids(client: Client, site: SiteData) -> None:
    model = next(m for m in site.models if m.published_quants)
    typo = model.id[:-1] + ("x" if model.id[-1] != "x" else "y")
    r = client.get(urls.model_url(typo))
    assert r.status_code == 404
    assert "unknown model" in r.text
    assert f'href="{urls.model_url(model.id)}"' in r.text
    target = site.targets[0]
    r = client.get(urls.deploy_url(typo, model.published_quants[0], target.id))
    assert r.status_code == 404
    assert f'href="{urls.deploy_url(model.id, model.published_quants[0], target.id)}"' in r.text
    _no_leak(r.text)


def test_unknown_target_and_quant_404_with_suggestions(client: Client, site: SiteData) -> None:
    model = next(m for m in site.models if m.published_quants)
    quant = model.published_quants[0]
    target = next(t for t in site.targets if "/" in t.id)
    typo = target.id[:-1] + ("x" if target.id[-1] != "x" else "y")
    r = client.get(urls.deploy_url(model.id, quant, typo))
    assert r.status_code == 404
    assert "unknown hardware" in r.text
    assert f'href="{urls.deploy_url(model.id, quant, target.id)}"' in r.text
    r = client.get(urls.hardware_url(typo))
    assert r.status_code == 404
    assert f'href="{urls.hardware_url(target.id)}"' in r.text
    bad_quant = quant[:-1]
    r = client.get(urls.deploy_url(model.id, bad_quant, target.id))
    assert r.status_code == 404
    assert "unknown quantization" in r.text
    api = client.get("/api/plan", params={"model": model.id + "zz", "quant": quant, "target": target.id})
    assert api.status_code == 404
    assert model.id in api.json()["suggestions"]


def test_unknown_page_is_a_helpful_404(client: Client) -> None:
    r = client.get("/nothing/here")
    assert r.status_code == 404
    assert "/search?q=" in r.text
    assert r.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "path",
    [
        "/deploy/%2e%2e/q4_k_m/cpu",
        "/deploy/x/%2e%2e/cpu",
        "/deploy/x/q4_k_m/%2e%2e/%2e%2e/etc/passwd",
        "/models/..%2f..%2fetc",
        "/hardware/a/b/c/d",
        "/hardware/%00",
        "/values/x/q4_k_m/..%2f..%2fetc%2fpasswd.yaml",
        "/values/x/q4_k_m/cpu.txt",
        "/api/plans/x/q4_k_m/cpu.xml",
        "/models/" + "a" * 500,
    ],
)
def test_path_traversal_and_malformed_ids_are_400(client: Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 400, (path, r.status_code)
    _no_leak(r.text)


@pytest.mark.parametrize(
    "params",
    [
        {"model": "x", "quant": "q4_k_m"},
        {"model": "a" * 500, "quant": "q4_k_m", "target": "cpu"},
        {"model": "x", "quant": "q4_k_m", "target": "cpu", "context": "lots"},
        {"model": "x", "quant": "q4_k_m", "target": "cpu", "context": "-5"},
        {"model": "x", "quant": "q4_k_m", "target": "cpu", "context": "99999999999999999999"},
        {"model": "x", "quant": "q4_k_m", "target": "cpu", "context": "0"},
        {"model": "../../etc", "quant": "q4_k_m", "target": "cpu"},
        {"model": "x\u0000", "quant": "q4_k_m", "target": "cpu"},
    ],
)
def test_malformed_api_queries_are_400(client: Client, params: dict[str, str]) -> None:
    r = client.get("/api/plan", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]
    _no_leak(r.text)


def test_oversize_query_is_400(client: Client) -> None:
    r = client.get("/search", params={"q": "x" * 201})
    assert r.status_code == 400
    r = client.get("/search?" + "&".join(f"k{i}=v" for i in range(600)))
    assert r.status_code == 400
    r = client.get("/api/plan?model=a&model=b&quant=q&target=cpu")
    assert r.status_code == 400


def test_context_too_large_for_the_model_is_a_clear_error(client: Client, site: SiteData) -> None:
    model = next(m for m in site.models if m.published_quants)
    r = client.get(
        "/api/plan",
        params={"model": model.id, "quant": model.published_quants[0], "target": "cpu", "context": "16000000"},
    )
    assert r.status_code in (200, 400)
    _no_leak(r.text)
    if r.status_code == 400:
        assert r.json()["error"]


_segment = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc")), min_size=0, max_size=40
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_segment, b=_segment, c=_segment)
def test_fuzzed_paths_never_500(client: Client, a: str, b: str, c: str) -> None:
    from urllib.parse import quote

    for template in ("/deploy/{a}/{b}/{c}", "/values/{a}/{b}/{c}.yaml", "/models/{a}", "/hardware/{a}/{b}"):
        path = template.format(a=quote(a, safe=""), b=quote(b, safe=""), c=quote(c, safe="/"))
        r = client.get(path)
        assert r.status_code in (200, 301, 307, 400, 404), (path, r.status_code)
        _no_leak(r.text)
    r = client.get("/api/plan", params={"model": a, "quant": b, "target": c, "context": a[:5]})
    assert r.status_code in (200, 400, 404), (a, b, c, r.text)
    _no_leak(r.text)
