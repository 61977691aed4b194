"""LLM calls: their lifecycle, GenAI metrics, prices, budgets, quality and span enrichment."""
