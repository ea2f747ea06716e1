# servefit — `make demo` plans the reference case; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SERVEFIT_CACHE ?= $(HOME)/.cache/servefit

.PHONY: demo test install dev lint typecheck unit bench docs clean

$(BIN)/servefit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.dev: $(BIN)/servefit
	$(BIN)/pip install -q -e '.[dev]'
	PYTHON=$(BIN)/python scripts/ensure-llama.sh --server >/dev/null
	scripts/ensure-browser.sh
	@touch $@

install: $(BIN)/servefit

dev: $(VENV)/.dev

demo: install
	$(BIN)/servefit plan nemotron-3-super-120b-a12b --quant Q4_K_S --on scaleway/l4-2-24g

lint: dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: dev
	$(BIN)/mypy

test: dev lint typecheck
	$(BIN)/python -m pytest -q

bench: dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
