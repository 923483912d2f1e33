"""Every built-in backend implements the protocol the core calls it through (harness.protocols), and
the paid-API extras the cache relies on are recognised by protocol, not by attribute guessing."""

from __future__ import annotations

import pytest

from harness import registry
from harness.protocols import AdapterFormat, Encoder, Generator, PaidEncoder, Reranker, Retriever, Trainer

PROTOCOLS = {"encoder": Encoder, "reranker": Reranker, "retriever": Retriever, "generator": Generator, "trainer": Trainer}


def members(protocol: type) -> set[str]:
    """The methods and properties a protocol declares."""
    return {n for n, v in vars(protocol).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k in PROTOCOLS for n in registry.BUILTIN.get(k, {})])
def test_builtin_backend_has_every_member_of_its_protocol(kind, name):
    cls = registry.load(kind, name)
    missing = {m for m in members(PROTOCOLS[kind]) if not hasattr(cls, m)}
    assert not missing, f"{kind} backend '{name}' lacks {missing}"


def test_the_adapter_encoder_defines_the_adapter_folder_format():
    cls = registry.load("encoder", "adapter")
    assert members(AdapterFormat) <= set(dir(cls))


def test_api_encoders_are_paid_encoders_and_local_ones_are_not(monkeypatch):
    from backends.cohere import CohereEncoder
    from backends.sentence_transformers import SentenceTransformerEncoder

    monkeypatch.setenv("COHERE_API_KEY", "test-key")
    assert isinstance(CohereEncoder(base_url="http://127.0.0.1:9"), PaidEncoder)
    local = SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2")
    assert isinstance(local, Encoder) and not isinstance(local, PaidEncoder)
