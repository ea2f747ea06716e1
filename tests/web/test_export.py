"""The static export: a complete small site on disk, links that resolve, and the CLI around it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from servefit.cli import main
from servefit.errors import OptionsError
from servefit.web import urls
from servefit.web.data import SiteData
from servefit.web.export import MARKER, build_site, limit_site


def _target_of_link(out: Path, href: str) -> Path:
    path = out / href.lstrip("/")
    return path if path.suffix in (".yaml", ".json", ".xml", ".css", ".js", ".txt") else path / "index.html"


def test_limited_build_is_a_complete_site(site: SiteData, tmp_path: Path) -> None:
    out = tmp_path / "site"
    progress: list[tuple[int, int]] = []
    report = build_site(out, data=site, limit=6, base_url="https://servefit.example",
                        progress=lambda d, t: progress.append((d, t)))  # fmt: skip
    small = limit_site(site, 6)
    assert report.deploy_pages == small.count_combinations() == 6
    assert report.json_files == 6
    assert progress[-1][0] == progress[-1][1] == report.pages
    assert (out / MARKER).exists() and (out / "404.html").exists() and (out / "static/style.css").exists()
    combo = next(small.combinations())
    page = out / urls.deploy_url(combo.model.id, combo.quant, combo.target.id).lstrip("/") / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "https://servefit.example/values/" in html
    # every internal link of every written page resolves to a written file
    missing: set[str] = set()
    for file in out.rglob("index.html"):
        for href in re.findall(r'href="(/[^"#?]*)"', file.read_text(encoding="utf-8")):
            if not href.startswith("/static/") and not _target_of_link(out, href).exists():
                missing.add(href)
    assert not missing, sorted(missing)[:10]
    assert report.pages_per_s > 0


def test_build_refuses_a_foreign_folder(site: SiteData, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OptionsError, match="not empty"):
        build_site(tmp_path, data=site, limit=1)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_cli_site_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-site"
    assert main(["site", "build", str(out), "--limit", "2", "--base-url", "https://example.org"]) == 0
    err = capsys.readouterr().err
    assert "deploy pages" in err and "pages/s" in err
    assert (out / "index.html").exists()
    with pytest.raises(OptionsError, match="--limit"):
        build_site(tmp_path / "x", limit=-1)


def test_parallel_build_writes_the_same_site(site: SiteData, tmp_path: Path) -> None:
    from dataclasses import replace

    models = [replace(m, published_quants=m.published_quants[:1]) for m in site.models if m.published_quants][:2]
    small = site.subset(models, site.targets[:3])
    one = build_site(tmp_path / "one", data=small, jobs=1)
    two = build_site(tmp_path / "two", data=small, jobs=2)
    assert (one.pages, one.deploy_pages, one.values_files) == (two.pages, two.deploy_pages, two.values_files)
    files_one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    files_two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert files_one == files_two
    for rel in files_one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
