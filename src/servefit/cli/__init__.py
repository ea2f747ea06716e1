"""The ``servefit`` command: thin; parses, calls the core, prints.

Each command group lives in its own module with a ``register(app)`` function. Errors from the
core arrive as ``ServefitError`` and are printed here once, on one line, with exit code 1.
"""

from __future__ import annotations

import importlib
import sys

import typer

from servefit.errors import ServefitError

__all__ = ["app", "main"]

app = typer.Typer(
    name="servefit",
    help="Plan, size, price and deploy llama.cpp (llama-server) for any model, quantization and hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from servefit import __version__

        print(f"servefit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Plan, size, price and deploy llama.cpp (llama-server) for any model, quantization and hardware."""


# Command modules, in the order their commands appear in --help.
_COMMAND_MODULES = ("inspect", "plan", "models", "hardware", "speed", "deploy", "web")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"servefit.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; a ServefitError becomes one line on stderr and exit code 1."""
    try:
        result = app(args=argv, standalone_mode=False)
    except ServefitError as exc:
        print(f"servefit: {exc}", file=sys.stderr)
        return 1
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("servefit: aborted", file=sys.stderr)
        return 1
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, bad value
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"servefit: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print("servefit: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
