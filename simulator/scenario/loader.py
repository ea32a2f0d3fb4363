"""Reading scenario files: safe YAML, guarded against alias bombs, errors that name the field.

Loading reads the file (and a `catalog:` it names) and nothing else; it writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.errors import ScenarioError
from simulator.files import MAX_TEXT_BYTES, read_text
from simulator.scenario.format import Scenario
from simulator.scenario.units import DEFAULT_MONTH_S, parse_duration
from simulator.serving.catalog import load_catalog_file

MAX_FILE_BYTES = MAX_TEXT_BYTES
MAX_EXPANDED_NODES = 2_000_000
MAX_DEPTH = 64
"""Nesting of mappings and lists in a document (a scenario needs about 6)."""
_TAG_KEYS = ("process", "dist", "kind", "format")


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (YAML itself keeps the last,
    silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: construction reports it
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in this mapping", mark
                )
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document would have with every alias expanded (stops at the limit), and
    no deeper than MAX_DEPTH."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        if len(in_progress) > MAX_DEPTH:
            raise ValueError(f"the document is nested more than {MAX_DEPTH} levels deep")
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if children_done:
            in_progress.discard(key)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_EXPANDED_NODES:
                raise ValueError(
                    f"the document expands to more than {MAX_EXPANDED_NODES:,} nodes "
                    "(YAML aliases nested too deep)"
                )
            sizes[key] = total
            continue
        if key in in_progress:
            raise ValueError("a YAML alias refers to itself (recursive structure)")
        in_progress.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in in_progress:
                raise ValueError("a YAML alias refers to itself (recursive structure)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def parse_yaml(text: str, source: str) -> Any:
    """Safe YAML (JSON is YAML too), refusing documents whose aliases would explode."""
    try:
        loader = _StrictLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise ScenarioError(source, [f"not valid YAML ({exc})"]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError(source, ["the file is empty"])
        _expanded_size(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError(source, [f"{where}not valid YAML ({exc.problem})"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(source, [f"not valid YAML ({exc})"]) from None
    except ValueError as exc:
        raise ScenarioError(source, [str(exc)]) from None
    except RecursionError:
        raise ScenarioError(
            source, [f"the document is nested more than {MAX_DEPTH} levels deep"]
        ) from None
    finally:
        loader.dispose()


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """A dotted path for an error location: list items by name, union tags dropped."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(node, list) and isinstance(item, int):
            entry = node[item] if item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            parts.append(str(name) if isinstance(name, str) else f"[{item}]")
            node = entry
        elif isinstance(node, dict):
            if item not in node and any(node.get(k) == item for k in _TAG_KEYS):
                continue  # the discriminated-union tag pydantic inserts
            parts.append(str(item))
            node = node.get(item) if isinstance(item, str) else None
        else:
            parts.append(str(item))
            node = None
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    msg = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; `capsim schema` lists the keys)"
    if kind == "missing":
        return "required, but missing"
    value = error.get("input")
    if kind not in ("value_error", "union_tag_invalid", "model_type") and not isinstance(
        value, dict | list
    ):
        shown = repr(value)
        msg = f"{msg} (got {shown[:60]})"
    return msg


def format_validation_error(exc: ValidationError, data: Any) -> list[str]:
    """One line a problem: `field.path: what was expected`."""
    lines = []
    for e in exc.errors():
        path = _field_path(tuple(e["loc"]), data)
        message = _message(e)
        lines.append(
            message
            if path == "(top level)" and e["type"] == "value_error"
            else f"{path}: {message}"
        )
    return lines


def scenario_from_data(data: Any, source: str, base_dir: Path) -> Scenario:
    """Validate already-parsed scenario data; `source` names it in errors."""
    if not isinstance(data, dict):
        raise ScenarioError(source, ["expected a mapping of scenario keys at the top level"])
    try:
        month_s = parse_duration(data.get("month", DEFAULT_MONTH_S))
    except ValueError as exc:
        raise ScenarioError(source, [f"month: {exc}"]) from None
    if month_s <= 0:
        raise ScenarioError(source, ["month: must be longer than 0 s"])
    context: dict[str, Any] = {"month_s": month_s, "base_dir": base_dir}
    catalog = data.get("catalog")
    if catalog is not None:
        if not isinstance(catalog, str):
            raise ScenarioError(source, ["catalog: expected a path to a LiteLLM price-map JSON"])
        context["catalog"] = load_catalog_file(base_dir / catalog)
    try:
        return Scenario.model_validate(data, context=context)
    except ValidationError as exc:
        raise ScenarioError(source, format_validation_error(exc, data)) from None


def load_scenario(source: str | Path | Mapping[str, Any]) -> Scenario:
    """A validated scenario from a YAML/JSON file path or from a mapping of its keys."""
    if isinstance(source, Mapping):
        return scenario_from_data(dict(source), "<scenario>", Path.cwd())
    data, name, base_dir = read_scenario_data(source)
    return scenario_from_data(data, name, base_dir)


def read_scenario_data(source: str | Path) -> tuple[Any, str, Path]:
    """The parsed, not yet validated, data of a scenario file, its name and its folder."""
    path = Path(source)
    text = read_text(path, "scenario file", MAX_FILE_BYTES)
    return parse_yaml(text, str(path)), str(path), path.parent
