"""Rules of llama.cpp's quantizer (src/llama-quant.cpp) as predict_types applies them.

The tensor-by-tensor comparison with llama.cpp itself is tests/integration/test_quant_validation.py;
these cases pin single rules read from the source, with hand-built inventories.
"""

from __future__ import annotations

import gguf
import pytest

from servefit.errors import UnknownQuantError
from servefit.model import Hparams
from servefit.quants import FILE_TYPES, default_type, ftype_id, predict_types, tensor_nbytes


def _hp(n_layer: int, *, n_expert: int = 0, n_head: int = 32, n_head_kv: int = 8) -> Hparams:
    return Hparams(
        n_layer=n_layer,
        n_embd=4096,
        n_vocab=1000,
        n_ctx_train=4096,
        n_head=(n_head,) * n_layer,
        n_head_kv=(n_head_kv,) * n_layer,
        n_embd_head_k=128,
        n_embd_head_v=128,
        n_ff=(0,) * n_layer,
        n_expert=n_expert,
    )


def test_ftype_ids_are_llama_h_values() -> None:
    for name in FILE_TYPES:
        assert ftype_id(name) == int(gguf.LlamaFileType["MOSTLY_" + name]), name


def test_unknown_ftype() -> None:
    with pytest.raises(UnknownQuantError, match="did you mean 'Q4_K_M'"):
        default_type("Q4_K_MM")


def test_row_length_fallbacks() -> None:
    # Nemotron 3 Super routed experts: rows of 2688 are not a multiple of 256
    hp = _hp(8, n_expert=512)
    tensors = [("blk.3.ffn_up_exps.weight", (2688, 1024, 512)), ("blk.3.ffn_gate_exps.weight", (48, 1024, 512))]
    assert predict_types("x", hp, tensors, "Q4_K_S") == ["Q5_0", "F16"]
    assert predict_types("x", hp, tensors, "Q6_K") == ["Q8_0", "F16"]
    assert predict_types("x", hp, tensors, "Q5_K_S") == ["Q5_1", "F16"]
    assert predict_types("x", hp, tensors, "Q3_K_S") == ["Q4_0", "F16"]
    assert predict_types("x", hp, tensors, "IQ4_XS") == ["IQ4_NL", "F16"]
    assert predict_types("x", hp, tensors, "Q4_0") == ["Q4_0", "F16"]


def test_output_and_tied_embeddings() -> None:
    hp = _hp(4)
    untied = [("token_embd.weight", (4096, 1000)), ("output.weight", (4096, 1000))]
    assert predict_types("llama", hp, untied, "Q4_K_M") == ["Q4_K", "Q6_K"]
    assert predict_types("llama", hp, untied, "Q8_0") == ["Q8_0", "Q8_0"]
    tied = [("token_embd.weight", (4096, 1000))]
    assert predict_types("llama", hp, tied, "Q4_K_M") == ["Q6_K"]
    odd = [("token_embd.weight", (2880, 1000))]  # gpt-oss width: not a multiple of 256
    assert predict_types("gpt-oss", hp, odd, "Q4_K_M") == ["Q8_0"]


def test_never_quantized_keep_their_type() -> None:
    hp = _hp(4, n_expert=16)
    tensors = [
        ("blk.0.attn_norm.weight", (4096,)),
        ("blk.0.ffn_gate_inp.weight", (4096, 16)),
        ("blk.0.ssm_conv1d.weight", (4, 8192)),
        ("blk.0.ssm_a", (1, 128)),
        ("blk.0.ssm_norm.weight", (1024, 8)),
        ("blk.0.ffn_gate_exps.bias", (256, 16)),
    ]
    assert predict_types("x", hp, tensors, "Q4_K_M") == ["F32"] * 6


def test_ffn_down_layer_positions_q4_k_m() -> None:
    # use_more_bits: first and last eighth of the layers, and every third layer in between
    n = 16
    hp = _hp(n)
    tensors = [(f"blk.{i}.ffn_down.weight", (14336, 4096)) for i in range(n)]
    types = predict_types("llama", hp, tensors, "Q4_K_M")
    six = [i for i, t in enumerate(types) if t == "Q6_K"]
    assert six == [0, 1, 4, 7, 10, 13, 14, 15]
    assert set(types) == {"Q4_K", "Q6_K"}


def test_attn_v_counter_q4_k_s_and_70b() -> None:
    hp = _hp(80)
    tensors = [(f"blk.{i}.attn_v.weight", (8192, 1024)) for i in range(80)]
    types = predict_types("llama", hp, tensors, "Q4_K_S")
    # 80-layer llama with GQA is LLM_TYPE_70B: Q4_K attn_v become Q5_K
    assert set(types) == {"Q5_K"}
    types = predict_types("qwen3", hp, tensors, "Q4_K_S")
    assert types[:4] == ["Q5_K"] * 4 and set(types[4:]) == {"Q4_K"}


def test_mxfp4_moe() -> None:
    hp = _hp(2, n_expert=32)
    tensors = [
        ("token_embd.weight", (2880, 1000)),
        ("blk.0.ffn_down_exps.weight", (2880, 2880, 32)),
        ("blk.0.attn_q.weight", (2880, 4096)),
        ("output.weight", (2880, 1000)),
    ]
    assert predict_types("gpt-oss", hp, tensors, "MXFP4_MOE") == ["Q8_0", "MXFP4", "Q8_0", "Q8_0"]


def test_float_file_types() -> None:
    hp = _hp(2)
    tensors = [("blk.0.attn_q.weight", (4096, 4096)), ("blk.0.attn_norm.weight", (4096,))]
    assert predict_types("llama", hp, tensors, "F16") == ["F16", "F32"]
    assert predict_types("llama", hp, tensors, "BF16") == ["BF16", "F32"]


def test_tensor_nbytes() -> None:
    assert tensor_nbytes((4096, 4096), "Q4_K") == 4096 * 4096 // 256 * 144
    assert tensor_nbytes((2688, 1024, 512), "Q5_0") == 2688 * 1024 * 512 // 32 * 22
    assert tensor_nbytes((4096,), "F32") == 4096 * 4
