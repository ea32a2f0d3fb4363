"""Variants of a scenario: a dotted path into its data set to other values.

Paths address list items by `name`: `deployments.pool.replicas`,
`workloads.chat.arrivals.rate`. Values come inline (`1,2,4`, or a YAML/JSON list) or from a
file (`@profiles.yaml`: a list, or a mapping of labels to values).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from simulator.errors import CapsimError
from simulator.files import read_text
from simulator.scenario.loader import parse_yaml


def set_path(data: Any, path: str, value: Any, option: str = "--vary") -> Any:
    """A deep copy of `data` with the value at dotted `path` replaced (list items by name);
    errors name `option`, the command-line option the path came from."""
    result = copy.deepcopy(data)
    node = result
    parts = path.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            matches = [item for item in node if isinstance(item, dict) and item.get("name") == part]
            if not matches:
                names = [str(item.get("name")) for item in node if isinstance(item, dict)]
                raise CapsimError(
                    f"{option} {path}: no item named {part!r} at {where} "
                    f"(names: {', '.join(names)})"
                )
            if last:
                raise CapsimError(f"{option} {path}: cannot replace a whole list item")
            node = matches[0]
        elif isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
                return result
            if part not in node:
                raise CapsimError(f"{option} {path}: no key {part!r} at {where}")
            node = node[part]
        else:
            raise CapsimError(f"{option} {path}: {where} is not a mapping or a list")
    return result


def parse_values(text: str, base_dir: Path) -> list[tuple[str, Any]]:
    """(label, value) pairs from `@file.yaml`, a YAML/JSON list, or comma-separated values."""
    if text.startswith("@"):
        path = (base_dir / text[1:]) if not Path(text[1:]).is_absolute() else Path(text[1:])
        if not path.is_file():
            path = Path(text[1:])
        data = parse_yaml(read_text(path, "value file"), str(path))
    elif text.lstrip().startswith("["):
        data = parse_yaml(text, "--vary")
    else:
        data = [parse_yaml(part, "--vary") for part in text.split(",")]
    if isinstance(data, dict):
        return [(str(label), value) for label, value in data.items()]
    if not isinstance(data, list) or not data:
        raise CapsimError(
            f"--vary: expected a list of values or a mapping of labels to values, got {text!r}"
        )
    return [(label_of(value), value) for value in data]


def label_of(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {v}" for k, v in value.items() if not isinstance(v, list | dict))
        return "{" + inner + "}"
    return str(value)


def vary(scenario: Any, changes: dict[str, Any]) -> Any:
    """The scenario with each dotted path of `changes` set to its value, validated as a file
    would be (pydantic's `model_copy(update=...)` skips validation: a string horizon or a
    negative one would pass). A bad value raises ScenarioError naming the field."""
    from pydantic import ValidationError

    from simulator.errors import ScenarioError
    from simulator.scenario.format import Scenario
    from simulator.scenario.loader import format_validation_error

    data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
    for path, value in changes.items():
        try:
            data = set_path(data, path, value)
        except CapsimError as exc:
            raise ScenarioError(f"<scenario {scenario.name}>", [str(exc)]) from None
    context = {"month_s": scenario.month, "base_dir": Path.cwd()}
    try:
        return Scenario.model_validate(data, context=context)
    except ValidationError as exc:
        raise ScenarioError(
            f"<scenario {scenario.name}>", format_validation_error(exc, data)
        ) from None
