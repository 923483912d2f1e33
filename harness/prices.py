"""List prices of the paid APIs, and turning billed units into dollars.

Defaults are the providers' public list prices as of November 2026 (cohere.com/pricing,
docs.voyageai.com/docs/pricing); a ladder's ``[prices]`` table overrides or adds entries, keyed like
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

    @model_validator(mode="after")
    def _one_unit(self) -> Price:
        if (self.per_million_tokens is None) == (self.per_thousand_searches is None):
            raise ValueError("give exactly one of per_million_tokens or per_thousand_searches")
        return self

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
}
