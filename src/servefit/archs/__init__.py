"""The architectures servefit reads from a Hugging Face ``config.json``, one entry per llama.cpp architecture.

Each entry pairs a hyperparameter reader (``config -> Hparams``, as ``convert_hf_to_gguf.py`` of the
llama.cpp vendored by llama-cpp-python 0.3.36 writes them, per-layer arrays expanded) with a tensor
lister (``(Hparams, config) -> [(name, shape)]``, the names of ``src/llama-arch.cpp`` and the shapes
``load_arch_tensors`` expects, GGML order). ``servefit.inventory`` is the public entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from servefit.archs.common import MAX_LAYERS, Config, Shapes, detect_arch
from servefit.archs.dense import hp_gemma3, hp_llama, ts_gemma3, ts_llama, ts_phi3, ts_qwen2, ts_qwen3
from servefit.archs.hybrid import (
    hp_granitehybrid,
    hp_nemotron_h,
    hp_qwen3next,
    ts_granitehybrid,
    ts_nemotron_h,
    ts_qwen3next,
)
from servefit.archs.moe import (
    hp_deepseek2,
    hp_glm4moe,
    hp_gpt_oss,
    hp_qwen3moe,
    ts_deepseek2,
    ts_glm4moe,
    ts_gpt_oss,
    ts_qwen3moe,
)
from servefit.model import Hparams

__all__ = ["ARCHITECTURES", "ARCHS", "MAX_LAYERS", "Arch", "Config", "Shapes", "detect_arch"]


@dataclass(frozen=True, slots=True)
class Arch:
    """How to read one architecture: its hyperparameters, then its tensor list."""

    hparams: Callable[[Config], Hparams]
    tensors: Callable[[Hparams, Config], Shapes]


ARCHS: dict[str, Arch] = {
    "llama": Arch(hp_llama, ts_llama),
    "mistral3": Arch(hp_llama, ts_llama),
    "qwen2": Arch(hp_llama, ts_qwen2),
    "qwen3": Arch(hp_llama, ts_qwen3),
    "qwen3moe": Arch(hp_qwen3moe, ts_qwen3moe),
    "phi3": Arch(hp_llama, ts_phi3),
    "gemma3": Arch(hp_gemma3, ts_gemma3),
    "gpt-oss": Arch(hp_gpt_oss, ts_gpt_oss),
    "deepseek2": Arch(hp_deepseek2, ts_deepseek2),
    "glm4moe": Arch(hp_glm4moe, ts_glm4moe),
    "qwen3next": Arch(hp_qwen3next, ts_qwen3next),
    "granitehybrid": Arch(hp_granitehybrid, ts_granitehybrid),
    "nemotron_h": Arch(hp_nemotron_h, ts_nemotron_h),
    "nemotron_h_moe": Arch(hp_nemotron_h, ts_nemotron_h),
}

ARCHITECTURES: tuple[str, ...] = tuple(ARCHS)
