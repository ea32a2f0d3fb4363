"""Architectures from Hugging Face config.json files: parameter and KV counts against the
bundled catalog and the published model sizes, and the config in scenarios and probe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.serving.hardware import find_architecture
from simulator.serving.hf_config import architecture_from_config
from tests.adversary import assert_refused, capsim_here

# The fields capsim reads, as the models' config.json files on Hugging Face give them.
LLAMA_31_8B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}
MIXTRAL_8X7B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
}
DEEPSEEK_V3 = {
    "hidden_size": 7168,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "tie_word_embeddings": False,
}


@pytest.mark.parametrize(
    ("config", "bundled"),
    [(LLAMA_31_8B, "llama-3.1-8b"), (MIXTRAL_8X7B, "mixtral-8x7b"), (DEEPSEEK_V3, "deepseek-v3")],
    ids=["dense GQA", "MoE", "MoE with latent attention"],
)
def test_a_config_gives_the_bundled_architecture(config: dict, bundled: str) -> None:
    """Counted from the shapes, the config gives the catalog's hand-entered figures."""
    arch = architecture_from_config(config, bundled)
    known = find_architecture(bundled)
    assert known is not None
    assert arch.total_params_b == pytest.approx(known.total_params_b, rel=5e-3)
    assert arch.active_params_b == pytest.approx(known.active_params_b, rel=5e-3)
    assert arch.kv_bytes_per_token_bf16 == known.kv_bytes_per_token_bf16
    assert (arch.layers, arch.experts, arch.experts_per_token) == (
        known.layers,
        known.experts,
        known.experts_per_token,
    )


# published sizes (model cards): total and active parameters, billions
PUBLISHED = {
    "qwen3-8b": (8.2, 8.2),
    "qwen3-32b": (32.8, 32.8),
    "qwen3-30b-a3b": (30.5, 3.3),
    "qwen3-235b-a22b": (235.0, 22.0),
    "mistral-7b": (7.24, 7.24),
    "mixtral-8x22b": (141.0, 39.0),
    "llama-2-7b": (6.74, 6.74),
    "llama-2-13b": (13.0, 13.0),
    "llama-4-scout": (109.0, 17.0),  # the card counts the vision encoder too
    "llama-4-maverick": (400.0, 17.0),
    # OpenAI's model card counts active parameters without the input embedding (0.58B)
    "gpt-oss-120b": (116.83, 5.13 + 0.58),
    "gpt-oss-20b": (20.91, 3.61 + 0.58),
    "gemma-3-27b": (27.0, 27.0),
    "gemma-3-12b": (11.8, 11.8),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_bundled_configs_give_the_published_sizes(name: str) -> None:
    arch = find_architecture(name)
    assert arch is not None
    total, active = PUBLISHED[name]
    assert arch.total_params_b == pytest.approx(total, rel=0.02)
    assert arch.active_params_b == pytest.approx(active, rel=0.03)


def test_a_scenario_sizes_a_model_from_its_config(tmp_path: Path) -> None:
    from simulator import load_scenario, run

    (tmp_path / "config.json").write_text(json.dumps(MIXTRAL_8X7B))
    scenario = {
        "name": "from-config",
        "horizon": "2m",
        "models": {
            "mine": {"price": {"input": 1, "output": 1}, "architecture": {"config": "config.json"}}
        },
        "workloads": [
            {
                "name": "w",
                "model": "mine",
                "arrivals": {"process": "poisson", "rate": "2/s"},
                "input_tokens": {"dist": "fixed", "value": 500},
                "output_tokens": {"dist": "fixed", "value": 50},
                "route": ["pool"],
            }
        ],
        "deployments": [
            {
                "name": "pool",
                "kind": "dedicated",
                "model": "mine",
                "gpu": "H100-SXM",
                "gpus_per_replica": 2,
                "price_per_gpu_hour": 3,
            }
        ],
    }
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(scenario))
    spec = load_scenario(path)
    arch = spec.models["mine"].resolved_architecture("mine")
    assert arch is not None and arch.experts == 8
    assert run(spec).report["deployments"][0]["requests"] > 0
    # a config that is not a language model's, or no file at all: exit 2, file and key named
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64}))
    assert_refused(
        capsim_here("validate", str(path)), str(tmp_path / "config.json"), "num_hidden_layers"
    )
    (tmp_path / "config.json").unlink()
    assert_refused(capsim_here("validate", str(path)), "config.json", "no such file")


def test_probe_takes_a_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(LLAMA_31_8B))
    by_config = capsim_here(
        "probe", "--architecture", str(config), "--gpu", "H100-SXM", "--input-tokens", "500",
        "--output-tokens", "50", "--concurrency", "4", "--format", "json",
    )  # fmt: skip
    by_name = capsim_here(
        "probe", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "--input-tokens", "500",
        "--output-tokens", "50", "--concurrency", "4", "--format", "json",
    )  # fmt: skip
    assert by_config.code == 0 and by_name.code == 0, by_config.stderr + by_name.stderr
    config_figures, name_figures = json.loads(by_config.stdout), json.loads(by_name.stdout)
    assert config_figures.keys() == name_figures.keys()
    for key, value in name_figures.items():  # None (no rate) and names compare as themselves
        if value is None or isinstance(value, str):
            assert config_figures[key] == value, key
        else:
            assert config_figures[key] == pytest.approx(value, rel=0.01), key
    assert name_figures["performance_model"] == "kernels"  # a config of a bundled model is it


def test_every_bundled_architecture_knows_its_vocabulary() -> None:
    """The output head's rows, which an EAGLE-style draft runs for every draft token: from
    models.csv or the bundled configs' vocab_size; a scenario can give its own."""
    from simulator.scenario.format import ArchitectureSpec
    from simulator.serving.hardware import architecture_catalog, find_architecture

    assert all(arch.vocab > 0 for arch in architecture_catalog().values())
    assert find_architecture("llama-3.1-8b").vocab == 128256  # type: ignore[union-attr]
    assert find_architecture("deepseek-v3").vocab == 129280  # type: ignore[union-attr]
    assert find_architecture("qwen3-8b").vocab == 151936  # type: ignore[union-attr]
    spec = ArchitectureSpec.model_validate({"like": "llama-3.1-8b", "vocab": 32000})
    assert spec.resolve("m").vocab == 32000
