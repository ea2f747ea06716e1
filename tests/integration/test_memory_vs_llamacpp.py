"""The byte model against llama.cpp itself.

Each case writes a synthetic model with the real structure of its architecture (tests/synth.py),
quantizes it with llama.cpp's own quantizer, loads it in llama.cpp (CPU) with the case's context
settings, and compares every buffer llama.cpp logs with ``servefit.memory``'s prediction for the
same file: weights (mapped range, repacked buffer, or allocated copy), KV cache, recurrent state
and output buffer must equal the log (which rounds to 0.01 MiB); the compute buffer must be within
2%: servefit rebuilds llama.cpp's graph for these architectures and replays ggml's allocator on it
(``servefit.ggml_graph``), which lands on the logged size in every case (docs/accuracy.md), so the
margin only covers architectures that would fall back to the estimate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llamacpp_log import CASES, LOG_ROUNDING_BYTES, Case, run_case

pytestmark = pytest.mark.llama

pytest.importorskip("llama_cpp")

COMPUTE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llamacpp-models")


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_buffers_match_llamacpp(case: Case, model_root: Path) -> None:
    result = run_case(case, model_root)
    assert not result.error, result.error
    names = [name for name, _p, _a in result.rows]
    assert any(n.startswith("weights") for n in names) and "compute" in names
    for name, predicted, logged in result.rows:
        if name == "compute":
            assert logged > 0
            assert abs(predicted - logged) <= COMPUTE_TOLERANCE * logged, (
                f"{case.label}: compute predicted {predicted / 2**20:.2f} MiB, llama.cpp {logged / 2**20:.2f} MiB"
            )
        else:
            assert abs(predicted - logged) <= LOG_ROUNDING_BYTES, (
                f"{case.label}: {name} predicted {predicted} bytes, llama.cpp logged {logged} bytes"
            )


def test_every_architecture_and_setting_is_covered() -> None:
    archs = {c.arch for c in CASES}
    assert {"llama", "qwen3moe", "gemma3", "gpt-oss", "nemotron_h_moe", "mamba2"} <= archs
    assert len({c.quant for c in CASES}) >= 4
    assert {c.flash_attn for c in CASES} == {True, False}
    assert {c.mmap for c in CASES} == {True, False}
    assert any(c.n_seq > 1 for c in CASES) and any(c.type_v != "f16" for c in CASES)
    assert len({c.n_ubatch for c in CASES}) >= 3 and len({c.n_ctx for c in CASES}) >= 3
