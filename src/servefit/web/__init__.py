"""The servefit website: server-rendered pages for every model × quantization × hardware target,
Helm values at stable addresses, a JSON API, and a static export of it all.

``create_app()`` builds the ASGI application over the embedded catalog; ``build_site()`` writes
the static export. See docs/web.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build_site", "create_app"]

if TYPE_CHECKING:
    from servefit.web.app import create_app
    from servefit.web.export import build_site


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from servefit.web.app import create_app

        return create_app
    if name == "build_site":
        from servefit.web.export import build_site

        return build_site
    raise AttributeError(name)
