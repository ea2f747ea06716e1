"""Per-tensor type prediction for llama.cpp file types.

``predict_types`` reproduces the choices of llama.cpp's quantizer (``src/llama-quant.cpp`` of the
llama.cpp vendored by llama-cpp-python 0.3.36: ``tensor_allows_quantization``,
``llama_tensor_get_type_impl``, ``tensor_type_fallback`` and ``llama_ftype_get_default_type``) for a
list of tensor names and shapes, as ``llama-quantize`` would apply them to a BF16 GGUF written by
``convert_hf_to_gguf.py``:

- tensors the quantizer never touches (1-D tensors, norms, the MoE router ``ffn_gate_inp``,
  ``ssm_conv1d``, names not ending in ``weight``, ...) keep the type the converter gave them;
- the others start from the file type's default type and are adjusted per role: output and tied
  token embeddings, ``attn_v``-like tensors and ``ffn_down`` by layer position (``use_more_bits``),
  the 8-expert and 70B rules, MXFP4_MOE (experts to MXFP4, the rest to Q8_0);
- a row length that is not a multiple of the type's block size falls back along llama.cpp's chain
  (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0, IQ4_XS -> IQ4_NL), and to F16 when
  even the fallback does not fit.

The rules depend on the order in which llama.cpp walks the tensors (by layer, then by name), so the
prediction is made over the whole model at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from servefit.errors import ModelError, UnknownQuantError
from servefit.model import Hparams

__all__ = [
    "FILE_TYPES",
    "IMATRIX_FILE_TYPES",
    "block_size",
    "converter_type",
    "default_type",
    "ftype_id",
    "is_quantized",
    "predict_types",
    "tensor_nbytes",
]

# llama_ftype values of include/llama.h (LLAMA_FTYPE_MOSTLY_<name>), the ids GGUF files carry in
# general.file_type, and the default tensor type of each (llama_ftype_get_default_type).
_FTYPES: dict[str, tuple[int, str]] = {
    "F32": (0, "F32"),
    "F16": (1, "F16"),
    "Q4_0": (2, "Q4_0"),
    "Q4_1": (3, "Q4_1"),
    "Q8_0": (7, "Q8_0"),
    "Q5_0": (8, "Q5_0"),
    "Q5_1": (9, "Q5_1"),
    "Q2_K": (10, "Q2_K"),
    "Q3_K_S": (11, "Q3_K"),
    "Q3_K_M": (12, "Q3_K"),
    "Q3_K_L": (13, "Q3_K"),
    "Q4_K_S": (14, "Q4_K"),
    "Q4_K_M": (15, "Q4_K"),
    "Q5_K_S": (16, "Q5_K"),
    "Q5_K_M": (17, "Q5_K"),
    "Q6_K": (18, "Q6_K"),
    "IQ2_XXS": (19, "IQ2_XXS"),
    "IQ2_XS": (20, "IQ2_XS"),
    "Q2_K_S": (21, "Q2_K"),
    "IQ3_XS": (22, "IQ3_S"),
    "IQ3_XXS": (23, "IQ3_XXS"),
    "IQ1_S": (24, "IQ1_S"),
    "IQ4_NL": (25, "IQ4_NL"),
    "IQ3_S": (26, "IQ3_S"),
    "IQ3_M": (27, "IQ3_S"),
    "IQ2_S": (28, "IQ2_XS"),
    "IQ2_M": (29, "IQ2_S"),
    "IQ4_XS": (30, "IQ4_XS"),
    "IQ1_M": (31, "IQ1_M"),
    "BF16": (32, "BF16"),
    "TQ1_0": (36, "TQ1_0"),
    "TQ2_0": (37, "TQ2_0"),
    "MXFP4_MOE": (38, "MXFP4"),
}

# File types whose every tensor type follows from the rules without an importance matrix: these are
# validated tensor by tensor against llama.cpp's quantizer (tests/integration/test_quant_validation.py).
FILE_TYPES: tuple[str, ...] = (
    "Q2_K",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
    "IQ3_S",
    "IQ3_M",
    "IQ4_NL",
    "IQ4_XS",
    "BF16",
    "F16",
    "MXFP4_MOE",
)

# File types llama.cpp refuses to write without an importance matrix (some of their tensors get
# IQ1/IQ2/IQ3_XXS types, or Q2_K inside Q2_K_S). Their types are predicted with ``imatrix=True``
# (the choice does not depend on the matrix' values), but they are not validated here.
IMATRIX_FILE_TYPES: tuple[str, ...] = (
    "IQ1_S",
    "IQ1_M",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ3_XXS",
    "IQ3_XS",
    "Q2_K_S",
)

_FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})

# Architectures whose loader gives LLM_TYPE_70B to 80-layer models (src/models/<arch>.cpp); the
# quantizer gives such models' attn_v one more step (Q3_K/Q4_K -> Q5_K).
_ARCH_70B_AT_80_LAYERS = frozenset({"llama", "qwen2", "deci", "olmo"})

# Hybrid architectures whose GGUF has a single head_count_kv (llama.cpp's n_gqa() of layer 0 then is
# that of the attention layers), where servefit's Hparams has 0 on the recurrent layers.
_KV_SCALAR_ARCHS = frozenset({"qwen3next"})


def ftype_id(ftype: str) -> int:
    """The ``llama_ftype`` number of a file type name (``Q4_K_M`` -> 15)."""
    return _FTYPES[_check_ftype(ftype)][0]


def default_type(ftype: str) -> str:
    """The tensor type a file type starts from (``Q4_K_M`` -> ``Q4_K``)."""
    return _FTYPES[_check_ftype(ftype)][1]


def _check_ftype(ftype: str) -> str:
    if ftype not in _FTYPES:
        from difflib import get_close_matches

        raise UnknownQuantError(ftype, get_close_matches(ftype.upper(), list(_FTYPES), n=3, cutoff=0.5))
    return ftype


def block_size(ggml_type: str) -> int:
    """Elements per block of a GGML type (256 for K-quants, 32 for Q4_0/Q8_0/MXFP4, 1 for floats)."""
    return GGML_QUANT_SIZES[GGMLQuantizationType[ggml_type]][0]


def is_quantized(ggml_type: str) -> bool:
    return ggml_type not in _FLOAT_TYPES and ggml_type not in {"I8", "I16", "I32", "I64"}


def tensor_nbytes(shape: Sequence[int], ggml_type: str) -> int:
    """Exact bytes of a tensor's data: rows x blocks per row x bytes per block."""
    blck, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[ggml_type]]
    n = 1
    for d in shape:
        n *= d
    return n // blck * type_size


def _n_dims(shape: Sequence[int]) -> int:
    """ggml_n_dims: trailing dimensions of size 1 do not count, at least 1."""
    n = len(shape)
    while n > 1 and shape[n - 1] == 1:
        n -= 1
    return max(n, 1)


# Tensors convert_hf_to_gguf.py always writes as F32 (ModelBase.prepare_tensors): 1-D tensors and
# norms, the MoE router, Mamba/short convolutions, position embeddings, and RWKV's small matrices.
_F32_NAME_PARTS = (
    "ffn_gate_inp.",
    "ffn_gate_inp_shexp.",
    "ssm_conv1d",
    "shortconv.conv.",
    "position_embd.",
    "token_types.",
    "time_mix_first.",
    "time_mix_w1.",
    "time_mix_w2.",
    "time_mix_decay_w1.",
    "time_mix_decay_w2.",
    "time_mix_lerp_fused.",
    "altup_correct_coef.",
    "altup_predict_coef.",
    "indexer.proj.",
)


def converter_type(name: str, shape: Sequence[int], outtype: str = "BF16") -> str:
    """The type ``convert_hf_to_gguf.py --outtype bf16`` (or f16) gives a tensor.

    Tensors shipped pre-quantized by their publisher (gpt-oss experts in MXFP4) are handled by the
    caller.
    """
    if len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return "F32"
    if any(part in name for part in _F32_NAME_PARTS):
        return "F32"
    return outtype


def _allows_quantization(name: str, shape: Sequence[int]) -> bool:
    """tensor_allows_quantization of llama-quant.cpp (default parameters)."""
    if _n_dims(shape) < 2:
        return False
    if not name.endswith("weight"):
        return False
    excluded = (
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
    )
    if any(part in name for part in excluded):
        return False
    return name not in {"position_embd.weight", "token_types.weight"}


# tensor_get_category of llama-quant.cpp
_TOKEN_EMBD, _ATTN_Q, _ATTN_V, _ATTN_K, _ATTN_QKV, _ATTN_KV_B, _ATTN_OUT = range(7)
_FFN_UP, _FFN_GATE, _FFN_DOWN, _OUTPUT, _OTHER = range(7, 12)


def _category(name: str) -> int:
    if name == "output.weight":
        return _OUTPUT
    if name in {"token_embd.weight", "per_layer_token_embd.weight"}:
        return _TOKEN_EMBD
    for part, cat in (
        ("attn_qkv.weight", _ATTN_QKV),
        ("attn_kv_b.weight", _ATTN_KV_B),
        ("attn_v.weight", _ATTN_V),
        ("attn_k.weight", _ATTN_K),
        ("attn_q.weight", _ATTN_Q),
        ("attn_output.weight", _ATTN_OUT),
        ("ffn_up", _FFN_UP),
        ("ffn_gate", _FFN_GATE),
        ("ffn_down", _FFN_DOWN),
    ):
        if part in name:
            return cat
    return _OTHER


_LAYER_RE = re.compile(r"^blk\.(\d+)\.")


def _layer(name: str) -> int:
    m = _LAYER_RE.match(name)
    return int(m.group(1)) if m else -1


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or _cmod(i_layer - n_layers // 8, 3) == 2


def _cmod(a: int, b: int) -> int:
    """C's ``%`` (truncates toward zero)."""
    r = abs(a) % b
    return -r if a < 0 else r


@dataclass
class _State:
    """quantize_state_impl: the counters the rules read and advance as tensors are visited."""

    arch: str
    ftype: str
    n_expert: int
    n_gqa: int
    n_layer_all: int
    is_70b: bool
    has_imatrix: bool
    has_tied_embeddings: bool
    n_attention_wv: int
    i_attention_wv: int = 0
    i_ffn_down: int = 0
    i_ffn_gate: int = 0
    i_ffn_up: int = 0

    def layer_info(self, counter: int, name: str) -> tuple[int, int]:
        if max(1, self.n_expert) > 1:
            return _layer(name), self.n_layer_all
        return counter, self.n_layer_all


_IQ2_FAMILY = frozenset({"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})


def _impl(qs: _State, new_type: str, name: str, ne0: int, ne2: int, cat: int) -> str:
    """llama_tensor_get_type_impl, rule for rule."""
    ft = qs.ftype
    gqa4 = qs.n_gqa >= 4
    if cat == _OUTPUT or (qs.has_tied_embeddings and cat == _TOKEN_EMBD):
        if ft == "MXFP4_MOE" or ne0 % block_size(new_type) != 0:
            new_type = "Q8_0"
        elif ft in {"IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}:
            new_type = "Q5_K"
        elif new_type != "Q8_0":
            new_type = "Q6_K"
    elif ft == "MXFP4_MOE":
        new_type = "MXFP4" if ne2 > 1 else "Q8_0"
    elif cat == _TOKEN_EMBD:
        if ft in {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"}:
            new_type = "Q2_K"
        elif ft in {"IQ2_S", "IQ2_M", "IQ3_XXS"}:
            new_type = "IQ3_S"
        elif ft in {"TQ1_0", "TQ2_0"}:
            new_type = "Q4_K"
    elif ft in _IQ2_FAMILY:
        if cat in (_ATTN_V, _ATTN_QKV, _ATTN_KV_B):
            new_type = "Q4_K" if gqa4 or qs.n_expert >= 4 else "IQ3_S" if ft in {"IQ2_S", "IQ2_M"} else "Q2_K"
            qs.i_attention_wv += 1
        elif qs.n_expert == 8 and cat == _ATTN_K:
            new_type = "Q4_K"
        elif cat == _FFN_DOWN:
            if qs.i_ffn_down < qs.n_layer_all // 8:
                new_type = "IQ3_S" if ft in {"IQ2_S", "IQ2_M"} else "Q2_K"
            qs.i_ffn_down += 1
        elif cat == _ATTN_OUT:
            if qs.n_expert == 8:
                new_type = "Q5_K"
            elif ft in {"IQ1_S", "IQ1_M"}:
                new_type = "IQ2_XXS"
            elif ft in {"IQ2_S", "IQ2_M"}:
                new_type = "IQ3_S"
    elif cat in (_ATTN_V, _ATTN_QKV, _ATTN_KV_B):
        if ft == "Q2_K":
            new_type = "Q4_K" if gqa4 else "Q3_K"
        elif ft == "Q2_K_S" and gqa4:
            new_type = "Q4_K"
        elif ft == "IQ3_XXS":
            new_type = "Q4_K" if gqa4 else ("IQ3_S" if not qs.has_imatrix else "IQ3_XXS")
        elif (ft in {"IQ3_XS", "IQ3_S"} and gqa4) or ft == "IQ3_M":
            new_type = "Q4_K"
        elif ft == "Q3_K_M":
            new_type = "Q5_K" if qs.i_attention_wv < 2 else "Q4_K"
        elif ft == "Q3_K_L" or (ft in {"IQ4_NL", "IQ4_XS"} and gqa4):
            new_type = "Q5_K"
        elif ft in {"Q4_K_M", "Q5_K_M"} and _use_more_bits(qs.i_attention_wv, qs.n_attention_wv):
            new_type = "Q6_K"
        elif ft == "Q4_K_S" and qs.i_attention_wv < 4:
            new_type = "Q5_K"
        if qs.is_70b and new_type in {"Q3_K", "Q4_K"}:
            new_type = "Q5_K"
        if qs.n_expert == 8:
            new_type = "Q8_0"
        qs.i_attention_wv += 1
    elif cat == _ATTN_K:
        if qs.n_expert == 8:
            new_type = "Q8_0"
        elif ft == "IQ3_XS":
            new_type = "IQ3_XXS"
        elif ft == "IQ3_XXS":
            new_type = "IQ2_S"
    elif cat == _ATTN_Q:
        if ft == "IQ3_XS":
            new_type = "IQ3_XXS"
        elif ft == "IQ3_XXS":
            new_type = "IQ2_S"
    elif cat == _FFN_DOWN:
        i_layer, n_layer = qs.layer_info(qs.i_ffn_down, name)
        if ft == "Q2_K":
            new_type = "Q3_K"
        elif ft == "Q2_K_S":
            if i_layer < n_layer // 8:
                new_type = "Q4_K"
        elif ft == "IQ3_XXS" and not qs.has_imatrix:
            new_type = "Q4_K" if i_layer < n_layer // 8 else "Q3_K"
        elif ft == "Q3_K_M":
            # the Falcon-only Q3_K branch never applies to the architectures supported here
            new_type = "Q5_K" if i_layer < n_layer // 16 else "Q4_K"
        elif ft == "IQ3_M" and (i_layer < n_layer // 8 or (qs.n_expert == 8 and _use_more_bits(i_layer, n_layer))):
            new_type = "Q4_K"
        elif ft == "Q3_K_L":
            new_type = "Q5_K"
        elif ft == "Q4_K_M":
            if _use_more_bits(i_layer, n_layer):
                new_type = "Q6_K"
        elif i_layer < n_layer // 8 and ft in {"IQ4_NL", "IQ4_XS"} and not qs.has_imatrix:
            new_type = "Q5_K"
        elif ft == "Q5_K_M" and _use_more_bits(i_layer, n_layer):
            new_type = "Q6_K"
        elif ft == "Q4_K_S" and i_layer < n_layer // 8:
            new_type = "Q5_K"
        elif ft in {"Q4_0", "Q5_0"} and qs.has_imatrix and i_layer < n_layer // 8:
            new_type = "Q4_1" if ft == "Q4_0" else "Q5_1"
        qs.i_ffn_down += 1
    elif cat == _ATTN_OUT:
        if qs.n_expert == 8:
            if ft in {
                "Q2_K",
                "IQ3_XS",
                "IQ3_XXS",
                "Q3_K_S",
                "Q3_K_M",
                "IQ4_NL",
                "Q4_K_S",
                "Q4_K_M",
                "IQ3_S",
                "IQ3_M",
                "IQ4_XS",
            }:
                new_type = "Q5_K"
        else:
            new_type = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(
                ft, new_type
            )
    elif cat == _FFN_GATE:
        i_layer, n_layer = qs.layer_info(qs.i_ffn_gate, name)
        if ft == "IQ3_XS" and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            new_type = "IQ3_XXS"
        qs.i_ffn_gate += 1
    elif cat == _FFN_UP:
        i_layer, n_layer = qs.layer_info(qs.i_ffn_up, name)
        if ft == "IQ3_XS" and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            new_type = "IQ3_XXS"
        qs.i_ffn_up += 1
    return new_type


# tensor_type_fallback: the type a tensor gets when its row length is not a multiple of the block size
_FALLBACK = {
    "IQ1_S": "IQ4_NL",
    "IQ1_M": "IQ4_NL",
    "IQ2_XXS": "IQ4_NL",
    "IQ2_XS": "IQ4_NL",
    "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL",
    "IQ3_S": "IQ4_NL",
    "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0",
    "Q3_K": "Q4_0",
    "TQ1_0": "Q4_0",
    "TQ2_0": "Q4_0",
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}


def _fallback(ne0: int, target: str) -> str:
    if ne0 % block_size(target) == 0:
        return target
    result = _FALLBACK.get(target, target)
    if ne0 % block_size(result) != 0:
        result = "F16"
    return result


def predict_types(
    arch: str,
    hparams: Hparams,
    tensors: Sequence[tuple[str, tuple[int, ...]]],
    ftype: str,
    *,
    imatrix: bool = False,
    source_types: Sequence[str] | None = None,
) -> list[str]:
    """The GGML type llama.cpp's quantizer gives each tensor for file type ``ftype``.

    ``tensors`` are (name, shape in GGML order) as the GGUF holds them; ``source_types`` are their
    types in the file being quantized (default: what ``convert_hf_to_gguf.py --outtype bf16`` writes),
    which the tensors llama.cpp does not quantize keep. ``imatrix`` says whether an importance
    matrix is given (a few rules depend on it; it is implied for ``IMATRIX_FILE_TYPES``). Returns one type
    name per tensor, in the order given.
    """
    base = default_type(ftype)
    # files of these types only exist quantized with an importance matrix (llama.cpp refuses otherwise)
    imatrix = imatrix or ftype in IMATRIX_FILE_TYPES
    if source_types is None:
        source_types = [converter_type(n, s) for n, s in tensors]
    elif len(source_types) != len(tensors):
        raise ModelError(f"{len(source_types)} source types for {len(tensors)} tensors", architecture=arch)
    names = [n for n, _ in tensors]
    n_trunk = hparams.n_layer - hparams.n_nextn_layer
    n_head0 = hparams.n_head[0] if hparams.n_head else 0
    n_head_kv0 = hparams.n_head_kv[0] if hparams.n_head_kv else 0
    if arch in _KV_SCALAR_ARCHS:
        # the GGUF stores one head_count_kv for all layers, recurrent ones included
        n_head_kv0 = next((kv for kv in hparams.n_head_kv if kv), 0)
    qs = _State(
        arch=arch,
        ftype=ftype,
        n_expert=hparams.n_expert,
        n_gqa=n_head0 // n_head_kv0 if n_head_kv0 else 0,
        n_layer_all=hparams.n_layer,
        is_70b=arch in _ARCH_70B_AT_80_LAYERS and n_trunk == 80 and (arch != "llama" or n_head0 != n_head_kv0),
        has_imatrix=imatrix,
        has_tied_embeddings="output.weight" not in names,
        n_attention_wv=sum(1 for n in names if _category(n) in (_ATTN_V, _ATTN_QKV, _ATTN_KV_B)),
    )
    order = sorted(range(len(tensors)), key=lambda i: (_layer(names[i]), names[i]))
    result = [""] * len(tensors)
    for i in order:
        name, shape = tensors[i]
        if not _allows_quantization(name, shape):
            result[i] = source_types[i]
            continue
        new_type = base
        if is_quantized(base):
            ne2 = shape[2] if len(shape) > 2 else 1
            new_type = _impl(qs, new_type, name, shape[0], ne2, _category(name))
            new_type = _fallback(shape[0], new_type)
        result[i] = new_type
    return result
