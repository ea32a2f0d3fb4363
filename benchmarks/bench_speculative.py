"""Speculative decoding against published speedups that state their acceptance.

    python benchmarks/bench_speculative.py

Published measurements of DeepSeek-V3/R1's own multi-token-prediction (MTP) module as
the draft: one transformer block on the target's hidden state and the shared output
head, which is what capsim's default draft (`speculative` without `draft`: a decoder
layer of the target and its output head a draft token) prices. Both drafted one token a
step (k = 1) on 8 GPUs at batch ~1:

- vLLM pull request #12755 (github.com/vllm-project/vllm/pull/12755, 2025-02): DeepSeek-R1,
  TP 8, `--num-speculative-tokens 1`; acceptance 81-82.3%; at 1 request/s mean TPOT 55.47 ->
  33.99 ms, 1.63x.
- SGLang pull request #3582 (github.com/sgl-project/sglang/pull/3582, 2025-02): DeepSeek-V3,
  TP 8, batch 1 (`bench_one_batch_server`); average accept length ~1.9 tokens a step (an
  acceptance rate of ~0.9 for one draft token); 1.76x, 77 tokens/s.

Neither names its GPU; 671B in FP8 on 8 GPUs needs H200-class memory, and at batch 1 the
ratio barely depends on it (capsim: 1.59x on H200, 1.60x on MI300X, 1.65x on B200 at a
0.82). capsim measures one replica at concurrency 1 (`capsim probe`'s method) with and
without speculation, 1,000-token prompts and answers; the speedup is the TPOT ratio. It
was never fitted to these numbers. Absolute TPOTs are not compared: the 2025 engines
ran DeepSeek at 23-55 ms a token, four to nine times the roofline's; the same overheads
slow drafting and verification alike, so the ratio survives them (vLLM's 1.18x at
2 requests/s does not: its batches were larger than capsim's would be at that rate).
"""

from __future__ import annotations

from typing import NamedTuple

from simulator.studies.probe import probe


class Published(NamedTuple):
    source: str
    acceptance_rate: float
    speedup: float


PUBLISHED = (
    Published("vLLM #12755, R1, 1 req/s", 0.82, 1.63),
    Published("SGLang #3582, V3, batch 1", 0.90, 1.76),
)


def speedup(acceptance_rate: float, gpu: str = "H200") -> tuple[float, float]:
    """capsim's TPOT without and with MTP (k = 1) at concurrency 1, in seconds."""
    common = dict(model="deepseek-v3", gpu=gpu, gpus=8, precision="fp8", concurrency=1)
    plain = probe(**common)  # type: ignore[arg-type]
    spec = probe(  # type: ignore[arg-type]
        **common, speculative={"draft_tokens": 1, "acceptance_rate": acceptance_rate}
    )
    assert plain.tpot_s is not None and spec.tpot_s is not None
    return plain.tpot_s, spec.tpot_s


def main() -> None:
    print(f"{'published':<28} {'a':>5} {'TPOT ms':>15} {'capsim':>7} {'published':>9} {'error':>6}")
    for row in PUBLISHED:
        plain, spec = speedup(row.acceptance_rate)
        gain = plain / spec
        error = gain / row.speedup - 1
        print(
            f"{row.source:<28} {row.acceptance_rate:>5.2f} "
            f"{plain * 1e3:>6.2f} -> {spec * 1e3:>5.2f} {gain:>6.2f}x {row.speedup:>8.2f}x "
            f"{error:>+6.1%}"
        )


if __name__ == "__main__":
    main()
