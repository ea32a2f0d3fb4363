"""Images in requests (`images: {per_request, tokens_per_image}`): image tokens are input
tokens for prices, context limits and prefill, and a dedicated replica of a model with a
vision tower also runs its encoder over them."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import ScenarioError
from simulator.serving.hardware import find_architecture, find_gpu
from simulator.serving.performance import build_step_model, encoder_seconds_per_image_token
from tests.helpers import BASE, make_scenario, run_checked

GEMMA = {"price": {"input": 0.2, "output": 0.6}, "architecture": {"like": "gemma-3-27b"}}
IMAGES = {"per_request": {"dist": "empirical", "values": [1, 2, 4]}, "tokens_per_image": 256}


def _workload(images: dict | None, **extra: object) -> dict:
    workload = {
        **BASE["workloads"][0],
        "model": "g",
        "arrivals": {"process": "poisson", "rate": "2/s"},
        "input_tokens": {"dist": "lognormal", "mean": 600, "cv": 0.5},
        "output_tokens": {"dist": "fixed", "value": 100},
        **extra,
    }
    if images is not None:
        workload["images"] = images
    return workload


def _serverless(images: dict | None, context: int = 131_072, **extra: object) -> object:
    return make_scenario(
        horizon="10m",
        models={"g": {**GEMMA, "context_length": context}},
        workloads=[_workload(images, **extra)],
    )


def test_image_tokens_are_input_tokens_billed_at_the_input_price() -> None:
    """The same arrivals and text, plus 256 tokens an image; the bill is every input token
    at the input price, exactly."""
    text = run_checked(_serverless(None))
    with_images = run_checked(_serverless(IMAGES))
    a, b = text.runs[0].records, with_images.runs[0].records
    assert np.array_equal(a.arrival, b.arrival)
    assert np.array_equal(a.output_tokens, b.output_tokens)
    images = b.image_tokens
    assert images is not None and a.image_tokens is None
    assert np.array_equal(b.input_tokens - images, a.input_tokens)  # the text is unchanged
    assert set(np.unique(images // 256)) == {1, 2, 4}
    w = with_images.report["workloads"][0]
    assert w["image_tokens"] == int(images.sum())
    assert text.report["workloads"][0]["image_tokens"] == 0
    expected = (b.input_tokens.sum() * 0.2 + b.output_tokens.sum() * 0.6) / 1e6
    assert w["cost_usd"] == pytest.approx(expected, rel=1e-12)


def test_image_tokens_count_against_the_context_length() -> None:
    """Text of ~600 tokens fits 1,800; four images (1,024 tokens) on top do not always."""
    r = run_checked(_serverless(IMAGES, context=1_800)).runs[0].records
    assert r.image_tokens is not None
    over = r.input_tokens + r.output_tokens > 1_800
    assert over.any() and not over.all()
    assert np.all(r.reason[over] == 1)  # context_length
    text = r.input_tokens - r.image_tokens + r.output_tokens
    assert np.any(text[over] <= 1_800)  # requests whose text fits, refused for their images


def _lone_request(arch: str, images: dict) -> tuple[object, float]:
    """One request a minute on one H100 replica: its first token comes after the vision
    encoder and the prefill of all its input tokens."""
    workload = _workload(
        images,
        arrivals={"process": "batch_jobs", "every": 60, "requests": 1},
        input_tokens={"dist": "fixed", "value": 500},
        route=["pool"],
    )
    models = {"g": {**GEMMA, "architecture": {"like": arch}}}
    pool = {
        "name": "pool", "kind": "dedicated", "model": "g", "gpu": "H100-SXM",
        "gpus_per_replica": 2, "replicas": 1,
        "performance": {"model": "roofline", "precision": "fp8"},
    }  # fmt: skip
    scenario = make_scenario(horizon="5m", models=models, workloads=[workload], deployments=[pool])
    r = run_checked(scenario).runs[0].records
    ttft = float(np.median(r.first_token - r.arrival))
    return scenario, ttft


def test_a_vision_tower_adds_its_encoder_to_the_prefill() -> None:
    images = {"per_request": 2, "tokens_per_image": 256}
    scenario, ttft = _lone_request("gemma-3-27b", images)
    arch = find_architecture("gemma-3-27b")
    assert arch is not None and arch.vision_layers == 27
    model = build_step_model(scenario.deployments[0], arch)
    n_in = 500 + 2 * 256
    prefill = model.prefill_time(n_in, float(n_in) * n_in)
    gpu = find_gpu("H100-SXM")
    per_token = encoder_seconds_per_image_token(arch, gpu, 2, "bf16", 256, 0.6)
    # SigLIP over 4,096 patches an image: ~5.5 TFLOP, a few ms on two H100s
    assert 1e-3 < 512 * per_token < 1e-2
    assert ttft == pytest.approx(prefill + 512 * per_token, rel=1e-9)
    # a model with no vision tower prefills the same tokens, no encoder
    _, text_only = _lone_request("llama-3.1-70b", images)
    other = build_step_model(scenario.deployments[0], find_architecture("llama-3.1-70b"))
    assert text_only == pytest.approx(other.prefill_time(n_in, float(n_in) * n_in), rel=1e-9)


def test_gemma_3_vision_tower_is_read_from_its_config() -> None:
    arch = find_architecture("gemma-3-27b")
    assert arch is not None
    # 27 layers of width 1,152: attention 4 h^2, MLP 2 h x 4,304 (SigLIP-So400m)
    assert arch.vision_params_b == pytest.approx(27 * (4 * 1152**2 + 2 * 1152 * 4304) / 1e9)
    assert 0.40 < arch.vision_params_b < 0.42
    assert arch.vision_patches_per_token == (896 // 14) ** 2 / 256 == 16


@pytest.mark.parametrize(
    ("images", "field"),
    [
        ({"per_request": -1, "tokens_per_image": 256}, "images.per_request"),
        ({"per_request": 2}, "images.tokens_per_image"),
        ({"per_request": 2, "tokens_per_image": 0}, "images.tokens_per_image"),
        ({"per_request": "many", "tokens_per_image": 256}, "images.per_request"),
        ({"per_request": 2, "tokens_per_image": 256, "size": 3}, "images.size"),
    ],
)
def test_bad_images_are_refused_naming_the_field(images: dict, field: str) -> None:
    with pytest.raises(ScenarioError, match=field.replace(".", r"\W+")):
        _serverless(images)
