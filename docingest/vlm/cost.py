"""Token and cost accounting: an estimate before each request, the server's usage after."""

from __future__ import annotations

import math

from docingest.config import ImageDetail, ModelPrice, VlmOptions


def price_for(model: str, options: VlmOptions) -> ModelPrice:
    """Exact model name first, then the longest configured prefix (``gpt-4o-2024-08-06`` →
    ``gpt-4o``), else free."""
    if model in options.prices:
        return options.prices[model]
    prefixes = [name for name in options.prices if model.startswith(name)]
    return options.prices[max(prefixes, key=len)] if prefixes else ModelPrice()


def image_tokens(width: int, height: int, detail: ImageDetail, price: ModelPrice) -> int:
    """OpenAI's tile formula: fit in 2048x2048, shortest side to 768, 512-px tiles."""
    if detail == ImageDetail.LOW:
        return price.image_base_tokens
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return price.image_base_tokens + price.image_tile_tokens * tiles


def text_tokens(text: str) -> int:
    # ~4 characters per token for English prose and JSON; an estimate, the bill uses usage.
    return math.ceil(len(text) / 4)


def cost_usd(prompt_tokens: int, completion_tokens: int, price: ModelPrice) -> float:
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6
