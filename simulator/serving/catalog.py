"""Price catalogs: the bundled together.ai prices, or any LiteLLM-format price map.

A LiteLLM price map is a JSON object keyed by model name whose entries give USD per token
(`input_cost_per_token`, `output_cost_per_token`, optionally `*_batches` and
`max_input_tokens`); capsim shows and stores USD per 1M tokens.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.errors import ScenarioError
from simulator.files import kind_of
from simulator.scenario.limits import MAX_USD_PER_1M_TOKENS

BUNDLED_SOURCE = "together.ai serverless prices via LiteLLM 1.110.2 price map, extracted 2026-11-26"
_PREFIXES = ("together_ai/", "together-ai/", "togethercomputer/")


@dataclass(frozen=True)
class CatalogEntry:
    """One model's published prices (USD per 1M tokens) and limits."""

    id: str
    input_usd_per_1m: float
    output_usd_per_1m: float
    batch_input_usd_per_1m: float | None
    batch_output_usd_per_1m: float | None
    context_length: int | None
    mode: str
    cached_input_usd_per_1m: float | None = None
    provider: str | None = None
    deprecation_date: str | None = None  # ISO date the provider retires the id
    successor: str | None = None
    # long-context tiers: (prompt tokens above which, input, output, cached input) per 1M
    tiers: tuple[tuple[int, float, float, float | None], ...] = ()

    def deprecation_notice(self, today: str, source: str) -> str | None:
        """A sentence when the id is deprecated on or before `today` (ISO dates compare as
        text), else None."""
        if self.deprecation_date is None or self.deprecation_date > today:
            return None
        text = (
            f"model id {self.id!r} is deprecated since {self.deprecation_date} "
            f"({source}): its price may no longer be offered"
        )
        if self.successor:
            text += f"; successor: {self.successor}"
        return text + ". Give price: {input, output} to keep it, or pick a current id"


@dataclass(frozen=True)
class PriceCatalog:
    """Entries by lower-cased id, plus where they came from."""

    entries: dict[str, CatalogEntry]
    source: str

    def lookup(self, model_id: str) -> CatalogEntry | None:
        """The entry for `model_id`, with or without a provider prefix, any case."""
        key = model_id.strip().lower()
        candidates = [key] + [key.removeprefix(p) for p in _PREFIXES if key.startswith(p)]
        for candidate in candidates:
            if candidate in self.entries:
                return self.entries[candidate]
        return None

    def search(self, text: str | None) -> list[CatalogEntry]:
        """Entries whose id contains `text` (all when None), sorted by id."""
        needle = (text or "").lower()
        found = {e.id: e for k, e in self.entries.items() if needle in k}
        return [found[k] for k in sorted(found, key=str.lower)]


def _per_million(entry: dict[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(
            f"{where}.{key}: expected a number of USD per token, got {kind_of(value)}"
        )
    if value < 0:
        raise ValueError(f"{where}.{key}: a price cannot be negative, got {value!r}")
    per_million = float(value) * 1e6
    if per_million > MAX_USD_PER_1M_TOKENS:
        raise ValueError(
            f"{where}.{key}: {value!r} USD a token is over {MAX_USD_PER_1M_TOKENS:,.0f} USD "
            "per 1M tokens"
        )
    return per_million


def _iso_date(text: str) -> bool:
    import datetime

    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def closest_ids(catalog: PriceCatalog, text: str, count: int = 3) -> list[str]:
    """The catalog ids nearest to `text` (for "did you mean")."""
    import difflib

    ids = sorted({e.id for e in catalog.entries.values()})
    lowered = {i.lower(): i for i in ids}
    found = difflib.get_close_matches(text.lower(), list(lowered), n=count, cutoff=0.5)
    if not found:  # a model name without its organization: match the last part
        tails = {i.lower().rsplit("/", 1)[-1]: i.lower() for i in ids}
        found = [
            tails[t] for t in difflib.get_close_matches(text.lower(), list(tails), count, 0.5)
        ]
    return [lowered[f] for f in found]


_TIER_KEY = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


def _tiers(
    entry: dict[str, Any], name: str, output: float | None, cached: float | None
) -> tuple[tuple[int, float, float, float | None], ...]:
    """The map's long-context prices (`input_cost_per_token_above_200k_tokens` and its
    output and cache-read partners; LiteLLM bills a prompt over the threshold wholly at
    them), ascending; a tier without its own output or cache-read price keeps the base."""
    found = []
    for key in entry:
        match = _TIER_KEY.match(key)
        if match is None:
            continue
        k = match.group(1)
        price_in = _per_million(entry, key, name)
        if price_in is None:
            continue
        price_out = _per_million(entry, f"output_cost_per_token_above_{k}k_tokens", name)
        price_cached = _per_million(entry, f"cache_read_input_token_cost_above_{k}k_tokens", name)
        found.append(
            (
                int(k) * 1000,
                price_in,
                price_out if price_out is not None else (output or 0.0),
                price_cached if price_cached is not None else cached,
            )
        )
    return tuple(sorted(found))


def parse_litellm(data: Any, source: str) -> PriceCatalog:
    """Read a LiteLLM price map (dict of model -> per-token prices); aliases are followed."""
    if not isinstance(data, dict):
        raise ScenarioError(source, ["expected a JSON object keyed by model name"])
    entries: dict[str, CatalogEntry] = {}
    aliases: dict[str, str] = {}
    problems: list[str] = []
    for name, entry in data.items():
        if not isinstance(entry, dict) or name == "sample_spec":
            continue
        if "alias_of" in entry:
            aliases[name.lower()] = str(entry["alias_of"]).lower()
            continue
        try:
            price_in = _per_million(entry, "input_cost_per_token", name)
            price_out = _per_million(entry, "output_cost_per_token", name)
            batch_in = _per_million(entry, "input_cost_per_token_batches", name)
            batch_out = _per_million(entry, "output_cost_per_token_batches", name)
            cached_in = _per_million(entry, "cache_read_input_token_cost", name)
            tiers = _tiers(entry, name, price_out, cached_in)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if price_in is None and price_out is None:
            continue
        context = entry.get("max_input_tokens")
        model_id = name
        for prefix in _PREFIXES:
            model_id = model_id.removeprefix(prefix)
        deprecated = entry.get("deprecation_date")
        successor = entry.get("successor_model")
        if isinstance(successor, str):
            for prefix in _PREFIXES:
                successor = successor.removeprefix(prefix)
        entries[model_id.lower()] = CatalogEntry(
            id=model_id,
            input_usd_per_1m=price_in or 0.0,
            output_usd_per_1m=price_out or 0.0,
            batch_input_usd_per_1m=batch_in,
            batch_output_usd_per_1m=batch_out,
            context_length=int(context) if isinstance(context, int) and context > 0 else None,
            mode=str(entry.get("mode", "chat")),
            cached_input_usd_per_1m=cached_in,
            provider=str(entry["litellm_provider"]) if entry.get("litellm_provider") else None,
            deprecation_date=(
                deprecated if isinstance(deprecated, str) and _iso_date(deprecated) else None
            ),
            successor=successor if isinstance(successor, str) else None,
            tiers=tiers,
        )
    if problems:
        raise ScenarioError(source, problems)
    catalog = PriceCatalog(entries, source)
    for alias, target in aliases.items():
        resolved = catalog.lookup(target)
        if resolved is not None:
            short = alias
            for prefix in _PREFIXES:
                short = short.removeprefix(prefix)
            entries[short] = resolved
    return catalog


def load_catalog_file(path: Path) -> PriceCatalog:
    """A user's LiteLLM-format price map; a clear error if it cannot be read."""
    from simulator.files import parse_json, read_text

    return parse_litellm(parse_json(read_text(path, "price catalog"), str(path)), str(path))


@cache
def bundled_catalog() -> PriceCatalog:
    """The together.ai catalog shipped in `simulator/data/` (see its README for the source)."""
    text = resources.files("simulator.data").joinpath("prices_together_ai.json").read_text()
    return parse_litellm(json.loads(text), BUNDLED_SOURCE)
