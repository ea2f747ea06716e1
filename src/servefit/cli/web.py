"""``servefit web`` (serve the website) and ``servefit site build OUT`` (write it as static files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

site_app = typer.Typer(help="Build the website as static files.", no_args_is_help=True)


def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    base_url: Annotated[
        str | None, typer.Option(help="Public address of the site, used in absolute links (default: http://HOST:PORT).")
    ] = None,
) -> None:
    """Serve the website (every model × quant × hardware page, values files, JSON API) with uvicorn."""
    import uvicorn

    from servefit.web.app import create_app

    app = create_app(base_url=base_url or f"http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


@site_app.command("build")
def build(
    out: Annotated[Path, typer.Argument(help="Folder to write the site to (new, empty, or an earlier site).")],
    limit: Annotated[
        int | None, typer.Option(min=0, help="Build a smaller, complete site of about N deploy pages (a preview).")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes for the deploy pages (default: CPU count).")
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="Public address the site will be served at, used in commands and the site map.")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Write the whole website (pages, values files, plan JSON) to OUT for any static host."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from servefit.web.export import build_site

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]Building site"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("pages", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = build_site(out, base_url=base_url, limit=limit, jobs=jobs or os.cpu_count() or 1, progress=progress)
    console.print(
        f"Wrote {report.pages:,} pages ({report.deploy_pages:,} deploy pages), {report.values_files:,} values files "
        f"and {report.json_files:,} plan JSON files to {out} — {report.bytes_written / 1e6:,.1f} MB "
        f"in {report.seconds:.1f} s ({report.pages_per_s:,.0f} pages/s)."
    )


def register(app: typer.Typer) -> None:
    app.command("web")(web)
    app.add_typer(site_app, name="site")
