"""The package's public surface: __all__ is exactly what it exports, and every name resolves."""

from __future__ import annotations

import servefit


def test_all_names_resolve() -> None:
    for name in servefit.__all__:
        assert getattr(servefit, name) is not None, name


def test_all_matches_export_table() -> None:
    exported = set(servefit._EXPORTS) | {"__version__"}
    assert set(servefit.__all__) == exported
    assert sorted(servefit.__all__) == list(servefit.__all__)


def test_errors_share_one_root() -> None:
    for name in servefit.__all__:
        value = getattr(servefit, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, servefit.ServefitError), name
