"""A model's architecture: what the performance models need of it (parameters, layers,
attention shape, KV size, experts). Its own module so the catalog (`hardware`) and the
Hugging Face reader (`hf_config`) both build it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """What the roofline needs of a model: parameters, layers, attention shape, KV size."""

    name: str
    total_params_b: float
    active_params_b: float
    layers: int
    hidden: int
    attn_heads: int
    kv_heads: int
    head_dim: int
    kv_bytes_per_token_bf16: float
    experts: int = 0
    experts_per_token: int = 0
    vocab: int = 0  # the output head's rows (0: not known)
    # the vision encoder (a ViT: 0 layers when the model has none), and the patches it
    # encodes for each image token the language model reads (Gemma 3: 4,096 patches pooled
    # into 256 tokens, 16; Qwen2.5-VL: 2 x 2 patches merged, 4)
    vision_layers: int = 0
    vision_hidden: int = 0
    vision_params_b: float = 0.0
    vision_patches_per_token: float = 1.0

    @property
    def expert_params_b(self) -> float:
        """Parameters of one routed expert (all layers), from total and active counts."""
        if self.experts <= self.experts_per_token:
            return 0.0
        return (self.total_params_b - self.active_params_b) / (
            self.experts - self.experts_per_token
        )

    @property
    def shared_params_b(self) -> float:
        """Parameters every token uses (attention, embeddings, dense and shared experts)."""
        return self.active_params_b - self.experts_per_token * self.expert_params_b
