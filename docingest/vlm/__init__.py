"""Everything around a VLM request: parsing, refusals, limits, budget, cache, cost."""
