"""A step-by-step reference of the replica's batch model, for checking the event-by-event
engine on small cases: it iterates every decode step instead of computing runs of them."""

from __future__ import annotations

from collections import deque

import numpy as np

from simulator.serving.step import StepModel, fused_time


def simulate_steps(
    model: StepModel,
    max_batch: int,
    arrival: np.ndarray,
    inputs: np.ndarray,
    outputs: np.ndarray,
    fused: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, first_token, finish) of each request on one replica, stepping token by token.
    `fused`: the step that prefills the admitted prompts also decodes the running batch."""
    n = len(arrival)
    start, first, finish = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    order = deque(np.argsort(arrival, kind="stable").tolist())
    queue: deque[int] = deque()
    running: dict[int, list[int]] = {}  # request -> [remaining, context]
    kv_used = 0.0
    t = 0.0
    while order or queue or running:
        while order and arrival[order[0]] <= t:
            queue.append(order.popleft())
        admitted = []
        while queue and len(running) + len(admitted) < max_batch:
            need = inputs[queue[0]] + outputs[queue[0]]
            if kv_used + need > model.kv_capacity_tokens:
                break
            kv_used += need
            admitted.append(queue.popleft())
        if admitted:
            for i in admitted:
                start[i] = t
            ins = inputs[admitted].astype(float)
            if fused:
                context = sum(c for _, c in running.values())
                t += fused_time(
                    model, int(ins.sum()), float((ins * ins).sum()), len(running), context
                )
                kv_used -= _decode_step(running, finish, t, inputs, outputs)
            else:
                t += model.prefill_time(int(ins.sum()), float((ins * ins).sum()))
            for i in admitted:
                first[i] = t
                if outputs[i] <= 1:
                    finish[i] = t
                    kv_used -= inputs[i] + outputs[i]
                else:
                    running[i] = [int(outputs[i]) - 1, int(inputs[i]) + 1]
            continue
        if running:
            context = sum(c for _, c in running.values())
            t += max(a + b * context for a, b in model.decode_lines(len(running)))
            kv_used -= _decode_step(running, finish, t, inputs, outputs)
            continue
        t = float(arrival[order[0]])
    return start, first, finish


def _decode_step(
    running: dict[int, list[int]],
    finish: np.ndarray,
    t: float,
    inputs: np.ndarray,
    outputs: np.ndarray,
) -> float:
    """Every running sequence gains a token (the step ends at t); returns the KV tokens the
    sequences that finish free."""
    freed = 0.0
    for i in list(running):
        running[i][0] -= 1
        running[i][1] += 1
        if running[i][0] == 0:
            finish[i] = t
            freed += inputs[i] + outputs[i]
            del running[i]
    return freed


def simulate_chunked_steps(
    model: StepModel,
    max_batch: int,
    budget: int,
    arrival: np.ndarray,
    inputs: np.ndarray,
    outputs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same with chunked prefill, one step at a time: each step decodes every running
    sequence and spends what is left of the token budget on the waiting prompts in order."""
    n = len(arrival)
    start, first, finish = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    order = deque(np.argsort(arrival, kind="stable").tolist())
    queue: deque[int] = deque()
    prefilling: deque[list[int]] = deque()
    running: dict[int, list[int]] = {}
    kv_used = 0.0
    t = 0.0
    while order or queue or running or prefilling:
        while order and arrival[order[0]] <= t:
            queue.append(order.popleft())
        while queue and len(running) + len(prefilling) < max_batch:
            need = inputs[queue[0]] + outputs[queue[0]]
            if kv_used + need > model.kv_capacity_tokens:
                break
            kv_used += need
            i = queue.popleft()
            start[i] = t
            prefilling.append([i, int(inputs[i])])
        if not running and not prefilling:
            t = float(arrival[order[0]])
            continue
        chunk = max(1, budget - len(running)) if prefilling else 0
        context = sum(c for _, c in running.values())
        lines = (
            model.mixed_lines(len(running), chunk) if chunk else model.decode_lines(len(running))
        )
        t += max(a + b * context for a, b in lines)
        for i in list(running):
            running[i][0] -= 1
            running[i][1] += 1
            if running[i][0] == 0:
                finish[i] = t
                kv_used -= inputs[i] + outputs[i]
                del running[i]
        left = chunk
        while left > 0 and prefilling:
            head = prefilling[0]
            if head[1] <= left:
                left -= head[1]
                prefilling.popleft()
                i = head[0]
                first[i] = t
                if outputs[i] <= 1:
                    finish[i] = t
                    kv_used -= inputs[i] + outputs[i]
                else:
                    running[i] = [int(outputs[i]) - 1, int(inputs[i]) + 1]
            else:
                head[1] -= left
                left = 0
    return start, first, finish
