"""A model's architecture from its Hugging Face `config.json`: dense, grouped-query, MoE
(routed and shared experts, dense layers among them) and multi-head latent attention.

Parameters are counted from the shapes, as the checkpoint stores them: embeddings (and the
output head unless tied), per layer the attention projections, the MLP (a gated MLP: three
matrices, as Llama, Mistral, Qwen, DeepSeek and Gemma have) or the routed experts with their
router and shared experts; norms and biases are left out (well under 0.1%). The KV cache per
token is 2 (keys and values) x layers x KV heads x head size x 2 bytes in BF16, or, with
latent attention, layers x (latent rank + RoPE dimension) x 2 bytes. Not modeled: sliding
window layers (their KV is counted as full attention, an overestimate for Gemma and
gpt-oss), Llama 4's chunked attention (counted as full), gpt-oss's MXFP4 experts (weights
are counted at the precision the deployment names), multi-token prediction layers. A
vision tower (`vision_config`: a ViT, as Gemma 3's SigLIP or Qwen2.5-VL's) is read for its
encoder's cost per image token: its layers, width and parameters (attention 4 h^2, MLP 2
or, gated, 3 h x intermediate a layer) and the patches an image token stands for; its
weights are not added to the language model's.
"""

from __future__ import annotations

from typing import Any

from simulator.files import kind_of
from simulator.serving.architecture import Architecture


def _int(config: dict[str, Any], *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = config.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key}: expected a whole number >= 0, got {kind_of(value)}")
            return value
    if default is None:
        raise ValueError(f"missing {' or '.join(keys)} (is this a language model's config?)")
    return default


def _moe_layers(config: dict[str, Any], layers: int) -> list[bool]:
    """Which layers route to experts."""
    first_dense = _int(config, "first_k_dense_replace", default=0)
    step = _int(config, "decoder_sparse_step", "interleave_moe_layer_step", default=1) or 1
    dense_only = set(config.get("mlp_only_layers") or [])
    moe_list = config.get("moe_layers")  # Llama 4 lists them outright
    if isinstance(moe_list, list) and moe_list:
        listed = set(moe_list)
        return [i in listed for i in range(layers)]
    return [i >= first_dense and i not in dense_only and (i + 1) % step == 0 for i in range(layers)]


def vision_tower(config: dict[str, Any]) -> dict[str, Any]:
    """The vision encoder's fields of `Architecture` from a multimodal config (none: {})."""
    vision = config.get("vision_config")
    if not isinstance(vision, dict):
        return {}
    layers = _int(vision, "num_hidden_layers", "depth")
    hidden = _int(vision, "hidden_size", "embed_dim")
    inter = _int(vision, "intermediate_size", default=4 * hidden)
    gated = str(vision.get("hidden_act", "")).lower() in ("silu", "swiglu")
    params = layers * (4 * hidden * hidden + (3 if gated else 2) * hidden * inter)
    merge = _int(vision, "spatial_merge_size", default=1) or 1
    per_token = float(merge * merge)
    tokens = _int(config, "mm_tokens_per_image", default=0)
    size, patch = _int(vision, "image_size", default=0), _int(vision, "patch_size", default=0)
    if tokens and size and patch:  # patches pooled into a fixed number of tokens
        per_token = (size // patch) ** 2 / tokens
    return {
        "vision_layers": layers,
        "vision_hidden": hidden,
        "vision_params_b": params / 1e9,
        "vision_patches_per_token": per_token,
    }


def architecture_from_config(config: Any, name: str) -> Architecture:
    """The roofline's view of a model from its `config.json` data; ValueError naming the key
    when something needed is missing or malformed."""
    if not isinstance(config, dict):
        raise ValueError("expected a JSON object (a model's config.json)")
    tower = vision_tower(config)
    text = config.get("text_config")
    if isinstance(text, dict) and "hidden_size" in text:  # multimodal: the language model
        config = text
    hidden = _int(config, "hidden_size", "d_model", "n_embd")
    layers = _int(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(config, "num_attention_heads", "n_head")
    if hidden < 1 or layers < 1 or heads < 1:
        raise ValueError("hidden_size, num_hidden_layers and num_attention_heads must be >= 1")
    kv_heads = _int(config, "num_key_value_heads", default=heads) or heads
    head_dim = _int(config, "head_dim", default=hidden // heads) or hidden // heads
    vocab = _int(config, "vocab_size")
    tied = bool(config.get("tie_word_embeddings", False))
    embeddings = vocab * hidden * (1 if tied else 2)

    if config.get("kv_lora_rank"):  # multi-head latent attention (DeepSeek-V2/V3, Kimi K2)
        rank = _int(config, "kv_lora_rank")
        q_rank = _int(config, "q_lora_rank", default=0)
        rope = _int(config, "qk_rope_head_dim")
        nope = _int(config, "qk_nope_head_dim")
        v_dim = _int(config, "v_head_dim", default=nope)
        q = (
            hidden * q_rank + q_rank * heads * (nope + rope)
            if q_rank
            else hidden * heads * (nope + rope)
        )
        kv = hidden * (rank + rope) + rank * heads * (nope + v_dim)
        attention = q + kv + heads * v_dim * hidden
        kv_bytes = layers * (rank + rope) * 2.0
        attn_width_dim = nope + rope
        kv_heads_shown = heads
    else:
        attention = hidden * (heads + 2 * kv_heads) * head_dim + heads * head_dim * hidden
        kv_bytes = 2.0 * layers * kv_heads * head_dim * 2.0
        attn_width_dim = head_dim
        kv_heads_shown = kv_heads

    experts = _int(config, "num_local_experts", "num_experts", "n_routed_experts", default=0)
    per_token = _int(config, "num_experts_per_tok", "experts_per_token", "moe_topk", default=0)
    dense_mlp = 0
    if experts:
        if not per_token:
            raise ValueError("num_experts_per_tok: needed with experts")
        expert_size = _int(config, "moe_intermediate_size", "intermediate_size")
        dense_size = _int(config, "intermediate_size_mlp", "intermediate_size", default=0)
        shared_size = _int(config, "shared_expert_intermediate_size", default=0)
        shared_size += (
            _int(config, "n_shared_experts", "num_shared_experts", default=0) * expert_size
        )
        if str(config.get("model_type", "")).startswith("llama4"):
            shared_size += expert_size  # Llama 4: one shared expert in every MoE layer
        moe = _moe_layers(config, layers)
        expert = 3 * hidden * expert_size
        shared = 3 * hidden * shared_size
        router = hidden * experts
        dense_mlp = 3 * hidden * dense_size
        total = active = embeddings + layers * attention
        for routed in moe:
            if routed:
                total += experts * expert + shared + router
                active += per_token * expert + shared + router
            else:
                total += dense_mlp
                active += dense_mlp
    else:
        intermediate = _int(config, "intermediate_size", "n_inner", "ffn_dim")
        total = active = embeddings + layers * (attention + 3 * hidden * intermediate)
    return Architecture(
        name=name,
        total_params_b=total / 1e9,
        active_params_b=active / 1e9,
        layers=layers,
        hidden=hidden,
        attn_heads=heads,
        kv_heads=kv_heads_shown,
        head_dim=attn_width_dim,
        kv_bytes_per_token_bf16=kv_bytes,
        experts=experts,
        experts_per_token=per_token if experts else 0,
        vocab=vocab,
        **tower,
    )
