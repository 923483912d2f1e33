"""List prices of the paid APIs, and turning billed units into dollars.

Defaults are the providers' public list prices as of November 2026 (cohere.com/pricing,
docs.voyageai.com/docs/pricing, platform.openai.com/docs/pricing); a ladder's ``[prices]`` table overrides or adds entries, keyed like
a backend's ``price_key`` (``"cohere:embed-v4.0"``). A record keeps the billed units as well as the
dollars, so a price change never invalidates it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Price(BaseModel):
    """Dollars per million tokens, or per thousand searches (Cohere rerank bills a query with up to 100 documents as one search)."""

    model_config = ConfigDict(extra="forbid")

    per_million_tokens: float | None = Field(None, ge=0)
    per_thousand_searches: float | None = Field(None, ge=0)
    per_million_output_tokens: float | None = Field(None, ge=0, description="chat models: per_million_tokens is then the input price")

    @model_validator(mode="after")
    def _one_unit(self) -> Price:
        if (self.per_million_tokens is None) == (self.per_thousand_searches is None):
            raise ValueError("give exactly one of per_million_tokens or per_thousand_searches")
        if self.per_million_output_tokens is not None and self.per_million_tokens is None:
            raise ValueError("per_million_output_tokens needs per_million_tokens (the input price)")
        return self

    def chat_dollars(self, input_tokens: float, output_tokens: float) -> float:
        """A chat model's bill: input and output tokens at their own prices (output at the input price if unset)."""
        output_price = self.per_million_tokens if self.per_million_output_tokens is None else self.per_million_output_tokens
        return (input_tokens * self.per_million_tokens + output_tokens * output_price) / 1e6

    @property
    def unit(self) -> str:
        return "tokens" if self.per_million_tokens is not None else "searches"

    def dollars(self, units: float) -> float:
        if self.per_million_tokens is not None:
            return units * self.per_million_tokens / 1e6
        return units * self.per_thousand_searches / 1e3


DEFAULT_PRICES: dict[str, Price] = {
    "cohere:embed-v4.0": Price(per_million_tokens=0.12),
    "cohere:embed-english-v3.0": Price(per_million_tokens=0.10),
    "cohere:embed-multilingual-v3.0": Price(per_million_tokens=0.10),
    "cohere:rerank-v3.5": Price(per_thousand_searches=2.00),
    "voyage:voyage-3-large": Price(per_million_tokens=0.18),
    "voyage:voyage-3.5": Price(per_million_tokens=0.06),
    "voyage:voyage-3.5-lite": Price(per_million_tokens=0.02),
    "voyage:voyage-3": Price(per_million_tokens=0.06),
    "voyage:rerank-2.5": Price(per_million_tokens=0.05),
    "voyage:rerank-2.5-lite": Price(per_million_tokens=0.02),
    # Embedding models, per million input tokens (platform.openai.com/docs/pricing, list prices of 2025).
    "openai:text-embedding-3-small": Price(per_million_tokens=0.02),
    "openai:text-embedding-3-large": Price(per_million_tokens=0.13),
    "openai:text-embedding-ada-002": Price(per_million_tokens=0.10),
    # Chat models for synthetic queries: input / output per million tokens (openai.com/api/pricing,
    # cohere.com/pricing, list prices of 2025). A model without an entry (a self-hosted server) is reported unpriced.
    "openai:gpt-4o-mini": Price(per_million_tokens=0.15, per_million_output_tokens=0.60),
    "openai:gpt-4o": Price(per_million_tokens=2.50, per_million_output_tokens=10.00),
    "openai:gpt-4.1-nano": Price(per_million_tokens=0.10, per_million_output_tokens=0.40),
    "openai:gpt-4.1-mini": Price(per_million_tokens=0.40, per_million_output_tokens=1.60),
    "openai:gpt-4.1": Price(per_million_tokens=2.00, per_million_output_tokens=8.00),
    "cohere:command-r7b-12-2024": Price(per_million_tokens=0.0375, per_million_output_tokens=0.15),
    "cohere:command-r-08-2024": Price(per_million_tokens=0.15, per_million_output_tokens=0.60),
    "cohere:command-a-03-2025": Price(per_million_tokens=2.50, per_million_output_tokens=10.00),
}
