"""From a Hugging Face ``config.json`` to the GGUF that llama.cpp's converter writes.

``hparams_from_config`` reads the hyperparameters the way ``convert_hf_to_gguf.py`` does (the
converter of the llama.cpp vendored by llama-cpp-python 0.3.36) and returns them as llama.cpp holds
them after loading (per-layer arrays expanded). ``tensor_shapes`` lists every tensor of the converted
file, with the names of ``src/llama-arch.cpp`` and the shapes ``load_arch_tensors`` of
``src/models/<arch>.cpp`` expects (GGML order); the per-architecture readers live in
:mod:`servefit.archs`. ``spec_from_config`` adds the types
``servefit.quants.predict_types`` predicts for a file type, exact tensor bytes, and an estimate of the
header; ``quant_ladder`` does it for every standard file type.

Next-n (MTP) layers are included where the converter writes them by default (GLM-4.x MoE and
Qwen3-Next write them as extra blocks, Nemotron-H MoE folds its MTP head into one trailing block;
the DeepSeek V3 converter drops them). They count in the file size, but llama.cpp loads their tensors
only when MTP speculative decoding is asked for (``llama_model_params.load_mtp``, false by default);
``LayerInfo.is_nextn`` marks those layers.

gpt-oss ships its experts in MXFP4 and the converter keeps them so; requantizing them needs
``llama-quantize --allow-requantize``, with which the usual rules apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servefit.archs import ARCHITECTURES, ARCHS, MAX_LAYERS, Config, Shapes, detect_arch
from servefit.errors import ModelError
from servefit.model import Hparams, LayerInfo, ModelSpec, TensorInfo, layer_index_of, role_of
from servefit.quants import FILE_TYPES, converter_type, predict_types, tensor_nbytes

__all__ = [
    "ARCHITECTURES",
    "QuantSize",
    "estimate_header_bytes",
    "hparams_from_config",
    "quant_ladder",
    "spec_from_config",
    "tensor_shapes",
]


GGUF_ALIGNMENT = 32  # general.alignment default (GGUF_DEFAULT_ALIGNMENT)


@dataclass(frozen=True, slots=True)
class QuantSize:
    """One rung of a model's quant ladder."""

    name: str  # file type: "Q4_K_M"
    tensor_bytes: int  # exact sum of tensor data
    file_bytes: int  # tensor data + padding + estimated header
    bits_per_weight: float  # 8 * tensor_bytes / parameters
    source: str = "predicted"  # "predicted" or "published"


# ---------------------------------------------------------------------------------------------
# public API


def _config(config: Mapping[str, Any]) -> tuple[Config, str]:
    cfg = Config(config)
    arch = detect_arch(cfg)
    if arch not in ARCHS:
        raise ModelError(f"config.json: architecture {arch!r} is not supported yet", architecture=arch)
    cfg.arch = arch
    n_layer = cfg.get("num_hidden_layers")
    if isinstance(n_layer, int) and not 0 < n_layer <= MAX_LAYERS:
        raise ModelError(
            f"config.json: num_hidden_layers must be between 1 and {MAX_LAYERS}, got {n_layer}",
            architecture=arch,
            key="num_hidden_layers",
        )
    return cfg, arch


def hparams_from_config(config: Mapping[str, Any]) -> tuple[str, Hparams]:
    """The llama.cpp architecture name and hyperparameters of a Hugging Face config.json."""
    cfg, arch = _config(config)
    hp = ARCHS[arch].hparams(cfg)
    _check_positive(hp, arch)
    return arch, hp


def _check_positive(hp: Hparams, arch: str) -> None:
    for key in ("n_layer", "n_embd", "n_vocab", "n_embd_head_k"):
        if getattr(hp, key) <= 0:
            raise ModelError(f"config.json: {key} must be positive ({arch})", architecture=arch, key=key)
    if hp.n_layer > MAX_LAYERS or hp.n_embd > 1 << 20 or hp.n_vocab > 1 << 24:
        raise ModelError(f"config.json: implausible sizes ({arch}: {hp.n_layer} layers, {hp.n_embd} wide)")


def tensor_shapes(arch: str, hparams: Hparams, config: Mapping[str, Any]) -> Shapes:
    """Every tensor (name, shape in GGML order) of the GGUF the converter writes for this model."""
    if arch not in ARCHS:
        raise ModelError(f"architecture {arch!r} is not supported yet", architecture=arch)
    cfg = Config(config)
    cfg.arch = arch
    return ARCHS[arch].tensors(hparams, cfg)


def _source_types(arch: str, tensors: Sequence[tuple[str, tuple[int, ...]]]) -> list[str]:
    types = [converter_type(n, s) for n, s in tensors]
    if arch == "gpt-oss":
        # gpt-oss ships its experts in MXFP4; the converter repacks them without requantizing
        types = ["MXFP4" if "_exps.weight" in n else t for (n, _), t in zip(tensors, types, strict=True)]
    return types


def _layers(hp: Hparams, tensors: Sequence[tuple[str, tuple[int, ...]]]) -> tuple[LayerInfo, ...]:
    names: list[set[str]] = [set() for _ in range(hp.n_layer)]
    for name, _ in tensors:
        i = layer_index_of(name)
        if i is not None and i < hp.n_layer:
            names[i].add(name.split(".", 2)[2])
    layers = []
    n_trunk = hp.n_layer - hp.n_nextn_layer
    for i, parts in enumerate(names):
        layers.append(
            LayerInfo(
                index=i,
                has_attention=hp.n_head_kv[i] > 0,
                has_recurrent=bool(hp.recurrent[i]) if hp.recurrent else False,
                has_moe=any("_exps." in p for p in parts),
                has_dense_ffn=any(p.startswith(("ffn_down.", "ffn_up.")) for p in parts),
                sliding_window=bool(hp.swa_layers[i]) if hp.swa_layers else False,
                is_nextn=i >= n_trunk,
            )
        )
    return tuple(layers)


def _gguf_string_bytes(text: str) -> int:
    return 8 + len(text.encode("utf-8"))


def estimate_header_bytes(hparams: Hparams, tensors: Sequence[tuple[str, tuple[int, ...]]]) -> int:
    """Bytes of a GGUF header before the tensor data, padding to the alignment included.

    Exact for the fixed part and the tensor infos; the metadata is estimated: about 2 KiB of
    architecture keys, the tokenizer's token list (8-byte length + about 7 bytes of text per token
    for byte-level BPE vocabularies), token types (4 bytes per token), merges (about 1 per token,
    8 + 12 bytes each) and a chat template (about 8 KiB). The total is within a few MiB of
    published files, which is below 0.1 % of any catalog model.
    """
    fixed = 4 + 4 + 8 + 8
    infos = sum(_gguf_string_bytes(n) + 4 + 8 * len(s) + 4 + 8 for n, s in tensors)
    n_vocab = hparams.n_vocab
    metadata = 2048 + 8192 + n_vocab * (8 + 7) + n_vocab * 4 + n_vocab * (8 + 12)
    size = fixed + infos + metadata
    return size + (-size % GGUF_ALIGNMENT)


def _file_bytes(hparams: Hparams, tensors: Sequence[tuple[str, tuple[int, ...]]], nbytes: Sequence[int]) -> int:
    data = sum(b + (-b % GGUF_ALIGNMENT) for b in nbytes)
    return estimate_header_bytes(hparams, tensors) + data


def spec_from_config(
    config: Mapping[str, Any],
    quant: str,
    *,
    name: str = "",
    model_id: str = "",
    gguf_repo: str = "",
    source: str = "",
    imatrix: bool = False,
) -> ModelSpec:
    """The ModelSpec of the GGUF llama.cpp would produce from this config at file type ``quant``.

    ``imatrix``: the file is quantized with an importance matrix (as most published quants are); it
    changes a few choices (Q4_0/Q5_0 and IQ4 ``ffn_down`` of the first layers) and is required for
    ``IMATRIX_FILE_TYPES``.
    """
    arch, hp = hparams_from_config(config)
    shapes = tensor_shapes(arch, hp, config)
    types = predict_types(arch, hp, shapes, quant, imatrix=imatrix, source_types=_source_types(arch, shapes))
    infos = []
    for (tname, shape), ttype in zip(shapes, types, strict=True):
        infos.append(
            TensorInfo(
                name=tname,
                shape=shape,
                ggml_type=ttype,
                nbytes=tensor_nbytes(shape, ttype),
                layer=layer_index_of(tname),
                role=role_of(tname),
            )
        )
    file_bytes = _file_bytes(hp, shapes, [t.nbytes for t in infos])
    return ModelSpec(
        architecture=arch,
        name=name or str(config.get("_name_or_path", "") or model_id or arch),
        hparams=hp,
        layers=_layers(hp, shapes),
        tensors=tuple(infos),
        ftype=quant,
        file_bytes=file_bytes,
        metadata={"predicted": True, "header_bytes_estimated": estimate_header_bytes(hp, shapes)},
        source=source,
        model_id=model_id,
        gguf_repo=gguf_repo,
    )


def quant_ladder(config: Mapping[str, Any], *, imatrix: bool = False) -> list[QuantSize]:
    """Predicted sizes of every standard file type (MXFP4_MOE only for MoE models)."""
    arch, hp = hparams_from_config(config)
    shapes = tensor_shapes(arch, hp, config)
    sources = _source_types(arch, shapes)
    n_params = sum(math.prod(s) for _, s in shapes)
    is_moe = any(len(s) > 2 and s[2] > 1 for _, s in shapes)
    ladder = []
    for ftype in FILE_TYPES:
        if ftype == "MXFP4_MOE" and not is_moe:
            continue
        types = predict_types(arch, hp, shapes, ftype, imatrix=imatrix, source_types=sources)
        nbytes = [tensor_nbytes(s, t) for (_, s), t in zip(shapes, types, strict=True)]
        tensor_bytes = sum(nbytes)
        ladder.append(
            QuantSize(
                name=ftype,
                tensor_bytes=tensor_bytes,
                file_bytes=_file_bytes(hp, shapes, nbytes),
                bits_per_weight=round(8 * tensor_bytes / n_params, 3),
            )
        )
    return ladder
