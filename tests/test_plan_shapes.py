"""`capsim plan --tp --engines`: every replica shape (GPU, GPUs a replica, engine) a row of
`gpu_options` with a cost or the reason it cannot serve the model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.test_cli import capsim
from tests.test_kernels import _scenario_data, needs_kernels


@needs_kernels
def test_plan_tries_every_replica_shape_and_says_why_one_cannot_serve(tmp_path: Path) -> None:
    """--tp and --engines: every (GPU, GPUs a replica, engine) a row with a cost or the
    reason it cannot serve; the answer the cheapest that meets the SLOs."""
    data = _scenario_data()
    data["models"]["m"]["architecture"] = {"like": "llama-3.1-70b"}
    data["workloads"][0]["arrivals"] = {"process": "poisson", "rate": "0.5/s"}
    data["workloads"][0]["slo"] = {"ttft_p95": "5s", "tpot_p95": "200ms"}
    data["deployments"][0]["gpus_per_replica"] = 2
    # BF16: 141 GB of weights, which one 80 GB GPU cannot hold
    data["deployments"][0]["performance"] = {"model": "kernels", "precision": "bf16"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    out = capsim(
        "plan", str(path), "--tp", "1,2", "--engines", "trtllm,vllm", "--max-replicas", "4",
        "--replications", "1", "--format", "json", "-q",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    options = answer["gpu_options"]
    assert {(o["gpus_per_replica"], o["engine"]) for o in options} == {
        (1, "trtllm"), (1, "vllm"), (2, "trtllm"), (2, "vllm"),
    }  # fmt: skip
    for o in options:
        if o["gpus_per_replica"] == 1:  # the weights do not fit
            assert o["error"] and "weights" in o["error"] and o["monthly_cost_usd"] is None
        else:
            assert o["error"] is None and o["performance_model"] == "kernels"
    met = [o for o in options if o["slo_met"]]
    assert met and answer["monthly_cost_usd"] == min(o["monthly_cost_usd"] for o in met)
    assert answer["performance_model"] == "kernels" and answer["engine"] in ("trtllm", "vllm")
    bad = capsim("plan", str(path), "--tp", "2,x")
    assert bad.returncode == 2 and "--tp" in bad.stderr
    bad = capsim("plan", str(path), "--engines", "tgi")
    assert bad.returncode == 2 and "--engines" in bad.stderr and "tgi" in bad.stderr
