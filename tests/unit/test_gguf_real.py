"""Real GGUF headers written by llama.cpp's converter: the vocab-only files shipped in its source tree.

Each is read by ``read_model_spec`` and cross-checked against ``gguf.GGUFReader``: every key, the
vocabulary size and the architecture. The files come with the pinned llama.cpp source
(``$SERVEFIT_CACHE/src/llama_cpp_python-0.3.36/vendor/llama.cpp/models``); without it the test skips.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gguf
import pytest

from servefit.gguf import GGUFArray, read_model_spec

MODELS = (
    Path(os.environ.get("SERVEFIT_CACHE", Path.home() / ".cache" / "servefit"))
    / "src/llama_cpp_python-0.3.36/vendor/llama.cpp/models"
)
# GGUFReader takes seconds per file: two small real headers (SentencePiece and WordPiece vocabularies)
FILES = ("ggml-vocab-llama-spm.gguf", "ggml-vocab-bert-bge.gguf")


def _ours(value: Any) -> Any:
    if isinstance(value, GGUFArray):
        return ("array", value.item_type, value.length) if value.values is None else list(value.values)
    return value


@pytest.mark.parametrize("name", FILES)
def test_real_vocab_header(name: str) -> None:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} not present (llama.cpp source not unpacked)")
    spec = read_model_spec(str(path))
    reader = gguf.GGUFReader(path)
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    assert list(spec.metadata) == keys
    for key in keys:
        field = reader.fields[key]
        ours = _ours(spec.metadata[key])
        if isinstance(ours, tuple):  # a long array: compare type and length
            assert ours == ("array", field.types[-1].name, len(field.data)), key
        elif isinstance(ours, float) or (isinstance(ours, list) and ours and isinstance(ours[0], float)):
            assert ours == pytest.approx(field.contents()), key
        else:
            assert ours == field.contents(), key
    assert spec.architecture == reader.fields["general.architecture"].contents()
    assert spec.hparams.n_vocab == len(reader.fields["tokenizer.ggml.tokens"].data)
    assert spec.file_bytes == path.stat().st_size
    assert spec.tensors == ()
