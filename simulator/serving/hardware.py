"""Bundled hardware catalogs: GPU specs (with dated prices) and model architectures."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from simulator.errors import ScenarioError
from simulator.files import parse_json, read_text
from simulator.serving.architecture import Architecture
from simulator.serving.hf_config import architecture_from_config

BYTES_PER_WEIGHT = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5}


@dataclass(frozen=True)
class GPU:
    """One GPU: memory, bandwidth, dense peak FLOP/s per precision, link, default price."""

    name: str
    memory_gb: float
    bandwidth_bytes_per_s: float
    flops: dict[str, float]  # dense FLOP/s by precision (bf16, fp8, fp4) where supported
    interconnect: str
    link_bytes_per_s: float  # per direction, for tensor-parallel all-reduce
    usd_per_gpu_hour: float | None
    price_date: str | None
    price_source: str


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("simulator.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _float(value: str) -> float | None:
    return float(value) if value.strip() else None


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


@cache
def gpu_catalog() -> dict[str, GPU]:
    """GPUs by lower-case name and alias."""
    catalog: dict[str, GPU] = {}
    for row in _rows("gpus.csv"):
        flops = {
            precision: value * 1e12
            for precision, column in (
                ("bf16", "bf16_dense_tflops"),
                ("fp8", "fp8_dense_tflops"),
                ("fp4", "fp4_dense_tflops"),
            )
            if (value := _float(row[column])) is not None
        }
        gpu = GPU(
            name=row["gpu"],
            memory_gb=float(row["memory_gb"]),
            bandwidth_bytes_per_s=float(row["mem_bw_TBps"]) * 1e12,
            flops=flops,
            interconnect=row["interconnect"],
            link_bytes_per_s=float(row["interconnect_GBps_per_direction"]) * 1e9,
            usd_per_gpu_hour=_float(row["usd_per_gpu_hour"]),
            price_date=row["price_date"] or None,
            price_source=row["price_source"],
        )
        for name in [row["gpu"], *row["aliases"].split("|")]:
            if name:
                catalog[_key(name)] = gpu
    return catalog


@cache
def architecture_catalog() -> dict[str, Architecture]:
    """Model architectures by lower-case name and alias (including serving ids)."""
    catalog: dict[str, Architecture] = {}
    for row in _rows("models.csv"):
        arch = Architecture(
            name=row["model"],
            total_params_b=float(row["total_params_b"]),
            active_params_b=float(row["active_params_b"]),
            layers=int(row["layers"]),
            hidden=int(row["hidden"]),
            attn_heads=int(row["attn_heads"]),
            kv_heads=int(row["kv_heads"]),
            head_dim=int(row["head_dim"]),
            kv_bytes_per_token_bf16=float(row["kv_bytes_per_token_bf16"]),
            experts=int(row["experts"] or 0),
            experts_per_token=int(row["experts_per_token"] or 0),
            vocab=int(row["vocab"] or 0),
        )
        for name in [row["model"], *row["aliases"].split("|")]:
            if name:
                catalog[_key(name)] = arch
    for row in _rows("model_configs.csv"):  # counted from bundled Hugging Face configs
        text = resources.files("simulator.data").joinpath(row["config"]).read_text("utf-8")
        arch = architecture_from_config(json.loads(text), row["model"])
        for name in [row["model"], *row["aliases"].split("|")]:
            if name:
                catalog[_key(name)] = arch
    return catalog


def find_gpu(name: str) -> GPU | None:
    return gpu_catalog().get(_key(name))


def find_architecture(name: str) -> Architecture | None:
    return architecture_catalog().get(_key(name))


def config_architecture(path: str) -> Architecture:
    """The architecture of a Hugging Face config.json file (ValueError naming the file)."""
    try:
        data = parse_json(read_text(Path(path), "model config"), path)
        return architecture_from_config(data, Path(path).parent.name or Path(path).stem)
    except ScenarioError as exc:
        raise ValueError(f"config: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"config: {path}: {exc}") from None


def gpu_names() -> list[str]:
    return sorted({g.name for g in gpu_catalog().values()})


def architecture_names() -> list[str]:
    return sorted({a.name for a in architecture_catalog().values()})
