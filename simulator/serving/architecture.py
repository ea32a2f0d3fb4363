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
