"""ModelSpec: a model as the planner sees it.

A ``ModelSpec`` is built either from a GGUF header (``gguf.read_model_spec``) or from a catalog
entry / Hugging Face ``config.json`` plus predicted tensor types (``quants``). Both paths produce
the same frozen structure: hyperparameters (with per-layer arrays), a kind per layer, and every
tensor with its GGML type and exact byte size.

Shapes are in GGML order (``ne0`` first: for a weight matrix ``[n_in, n_out]``), as GGUF stores
them. Bytes are exact integers computed from ``gguf.GGML_QUANT_SIZES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

__all__ = [
    "Hparams",
    "LayerInfo",
    "ModelSpec",
    "TensorInfo",
    "TensorRole",
    "layer_index_of",
    "role_of",
]


class TensorRole(StrEnum):
    """What a tensor is for; placement and speed rules key on it."""

    EMBEDDING = "embedding"  # token_embd (and per-layer input embeddings); stays on the host
    OUTPUT = "output"  # output (lm head); on GPU only at full offload
    ATTENTION = "attention"  # attn_q/k/v/output, MLA projections, attention sinks
    FFN = "ffn"  # dense FFN and the MoE router (ffn_gate_inp)
    ROUTED_EXPERTS = "routed_experts"  # ffn_*_exps / ffn_*_chexps: the tensors --n-cpu-moe moves
    SHARED_EXPERTS = "shared_experts"  # ffn_*_shexp
    SSM = "ssm"  # Mamba / recurrent tensors (ssm_*)
    NORM = "norm"  # every *_norm and small 1-D vectors
    OTHER = "other"


_LAYER_RE = re.compile(r"^blk\.(\d+)\.")
_EXPERTS_RE = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps\.")
_SHEXP_RE = re.compile(r"\.ffn_(up|down|gate|gate_up)_shexp\.|\.ffn_gate_inp_shexp\.")


def layer_index_of(name: str) -> int | None:
    """The repeating-layer index of a tensor name (``blk.12.attn_q.weight`` -> 12), else None."""
    m = _LAYER_RE.match(name)
    return int(m.group(1)) if m else None


def role_of(name: str) -> TensorRole:
    """Classify a tensor by its llama.cpp name."""
    if name.startswith("token_embd") or ".per_layer_token_embd" in name or name.startswith("per_layer_token_embd"):
        return TensorRole.EMBEDDING
    if name.startswith("output.") or name == "output":
        return TensorRole.OUTPUT
    if _EXPERTS_RE.search(name + "."):
        return TensorRole.ROUTED_EXPERTS
    if _SHEXP_RE.search(name + "."):
        return TensorRole.SHARED_EXPERTS
    leaf = name.split(".")
    part = leaf[2] if len(leaf) > 2 and leaf[0] == "blk" else leaf[0]
    if "norm" in part:
        return TensorRole.NORM
    if part.startswith("ssm_"):
        return TensorRole.SSM
    if part.startswith("attn_") or part in {"wkv_a_mqa", "wkv_b", "wq_a", "wq_b", "wkv", "attn_sinks"}:
        return TensorRole.ATTENTION
    if part.startswith("ffn_") or part.startswith("exp_probs"):
        return TensorRole.FFN
    return TensorRole.OTHER


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor of the model file."""

    name: str
    shape: tuple[int, ...]  # GGML order: ne0 (row length) first
    ggml_type: str  # GGMLQuantizationType name: "Q4_K", "F32", "MXFP4", ...
    nbytes: int  # exact bytes of tensor data
    layer: int | None  # repeating-layer index, None for token_embd/output/output_norm
    role: TensorRole
    offset: int = 0  # byte offset in its file's data section (0 for predicted tensors)
    split: int = 0  # index of the split file that holds it

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class Hparams:
    """Architecture hyperparameters, with llama.cpp's per-layer arrays expanded to one value per layer.

    ``n_head_kv[i] == 0`` means layer ``i`` has no attention (and so no KV cache), as llama.cpp
    reads hybrid models. ``recurrent[i]`` marks Mamba/SSM/RWKV layers that carry recurrent state.
    """

    n_layer: int  # repeating layers (block_count), MTP/next-n layers included when the file has them
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    n_embd_head_k: int
    n_embd_head_v: int
    n_ff: tuple[int, ...]  # dense FFN width per layer (0 on layers without a dense FFN)
    # Mixture of experts
    n_expert: int = 0
    n_expert_used: int = 0
    n_expert_shared: int = 0
    n_ff_exp: int = 0
    n_ff_shexp: int = 0
    moe_latent_size: int = 0  # LatentMoE (Nemotron 3 Super): experts work in this width
    n_layer_dense_lead: int = 0  # DeepSeek/GLM: first layers with a dense FFN
    # Multi-head latent attention (DeepSeek V2/V3, Kimi K2, GLM-4.x MLA variants)
    kv_lora_rank: int = 0
    n_embd_head_k_mla: int = 0
    n_embd_head_v_mla: int = 0
    # State space / recurrent layers
    ssm_d_conv: int = 0
    ssm_d_inner: int = 0
    ssm_d_state: int = 0
    ssm_n_group: int = 0
    ssm_dt_rank: int = 0  # Mamba-2: number of SSM heads
    recurrent: tuple[bool, ...] = ()
    # Sliding-window attention
    n_swa: int = 0
    swa_layers: tuple[bool, ...] = ()  # True where the layer uses the sliding window
    # Multi-token prediction (next-n) layers, counted inside n_layer at its end
    n_nextn_layer: int = 0
    rope_freq_base: float = 0.0
    n_embd_head_k_swa: int = 0  # K head size on sliding-window layers when it differs (key_length_swa); 0: same
    n_embd_head_v_swa: int = 0  # V head size on sliding-window layers when it differs (value_length_swa); 0: same


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """What one repeating layer contains."""

    index: int
    has_attention: bool
    has_recurrent: bool
    has_moe: bool
    has_dense_ffn: bool
    sliding_window: bool = False
    is_nextn: bool = False

    @property
    def kind(self) -> str:
        """``attention+ffn``, ``attention+moe``, ``recurrent``, ``moe``, ``recurrent+moe``, ..."""
        parts: list[str] = []
        if self.has_attention:
            parts.append("attention-swa" if self.sliding_window else "attention")
        if self.has_recurrent:
            parts.append("recurrent")
        if self.has_moe:
            parts.append("moe")
        if self.has_dense_ffn:
            parts.append("ffn")
        if self.is_nextn:
            parts.append("nextn")
        return "+".join(parts) if parts else "empty"


@dataclass(frozen=True)
class ModelSpec:
    """The model as the planner sees it; the same whether read from a GGUF or predicted from a config."""

    architecture: str  # llama.cpp arch name: "llama", "qwen3moe", "nemotron_h_moe", ...
    name: str
    hparams: Hparams
    layers: tuple[LayerInfo, ...]
    tensors: tuple[TensorInfo, ...]
    ftype: str  # file type: "Q4_K_M", "MXFP4_MOE", "BF16", ... ("unknown" when absent)
    file_bytes: int  # total bytes of the file(s): header + padding + data
    metadata: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    source: str = ""  # where it came from: path, URL, hf://..., catalog id
    model_id: str = ""  # catalog id when known ("nemotron-3-super-120b-a12b")
    gguf_repo: str = ""  # Hugging Face repo that publishes this GGUF ("unsloth/...-GGUF"), when known
    # The context the model was really trained for, when the GGUF's context_length overstates it (llama.cpp's
    # converter writes 2**20 for Nemotron-H and other models without RoPE). 0: use hparams.n_ctx_train.
    context_limit: int = 0

    @property
    def trained_context(self) -> int:
        """The context a plan may use at most: the model card's trained context, else the GGUF's."""
        if self.context_limit and self.context_limit < self.hparams.n_ctx_train:
            return self.context_limit
        return self.hparams.n_ctx_train

    # Derived totals are cached on the instance (cached_property writes to __dict__, which a frozen,
    # non-slotted dataclass allows); fields never change, so the cache cannot go stale.
    @cached_property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @cached_property
    def parameters(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def n_layers(self) -> int:
        return self.hparams.n_layer

    @cached_property
    def is_moe(self) -> bool:
        return any(t.role is TensorRole.ROUTED_EXPERTS for t in self.tensors)

    def layer_tensors(self, index: int) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if t.layer == index)
