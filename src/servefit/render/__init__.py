"""Renderers that turn a Plan into deployment files: Helm values, helmfile, compose, README.

They format what the plan decided and never compute a plan figure again; the only numbers they
add are deployment policies (memory headroom, cache volume size, probe budgets), each named and
documented in :mod:`servefit.render.values`.
"""

from __future__ import annotations

from servefit.render.compose import render_compose
from servefit.render.deploy import deploy_commands, write_deploy
from servefit.render.values import render_values, values_filename

__all__ = ["deploy_commands", "render_compose", "render_values", "values_filename", "write_deploy"]
