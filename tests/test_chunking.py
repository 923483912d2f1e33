"""Token windows for the chunked rung: overlap, coverage, prefixes, and the encoder's own tokens."""

from __future__ import annotations

import pytest

from harness.data.goldset import Document
from harness.retrieval.chunking import chunk_corpus, windows, word_spans


@pytest.mark.parametrize(("n", "size", "overlap", "expected"), [(0, 4, 1, 1), (3, 4, 1, 1), (4, 4, 1, 1), (5, 4, 1, 2), (10, 4, 1, 3), (11, 4, 2, 5)])
def test_windows_cover_every_token_with_the_overlap(n, size, overlap, expected):
    spans = [(i * 2, i * 2 + 1) for i in range(n)]
    got = windows(spans, size, overlap)
    assert len(got) == expected
    if n:
        assert got[0][0] == 0 and got[-1][1] == spans[-1][1]
        starts = [spans.index(next(s for s in spans if s[0] == a)) for a, _ in got]
        assert all(b - a == size - overlap for a, b in zip(starts, starts[1:]))


def test_chunks_carry_title_and_metadata_and_stay_in_document_order():
    docs = [Document("Varroa", "one two three four five six seven", {"season": "winter", "lang": "en"}), Document("", "alpha beta")]
    chunks = chunk_corpus(docs, size=4, overlap=1, prefix_title=True, prefix_metadata=["season"], title_separator=" | ", token_spans=None)
    assert chunks.texts == [
        "Varroa | season: winter | one two three four",
        "Varroa | season: winter | four five six seven",
        "alpha beta",
    ]
    assert chunks.starts.tolist() == [0, 2] and chunks.unit == "words"
    untitled = chunk_corpus(docs[:1], size=4, overlap=0, prefix_title=False, prefix_metadata=[], title_separator=" ", token_spans=None)
    assert untitled.texts == ["Varroa one two three", "four five six seven"]  # the title only opens the first chunk


def test_chunks_follow_the_encoder_tokenizer_when_it_has_one():
    def two_char_tokens(texts):
        return [[(i, min(i + 2, len(t))) for i in range(0, len(t), 2)] for t in texts]

    chunks = chunk_corpus([Document("", "abcdefgh")], size=2, overlap=0, prefix_title=True, prefix_metadata=[], title_separator=" ", token_spans=two_char_tokens)
    assert chunks.texts == ["abcd", "efgh"] and chunks.unit == "tokens"
    assert word_spans(["a  bc"]) == [[(0, 1), (3, 5)]]


def test_chunked_retriever_indexes_plain_texts_as_any_retriever(tmp_path):
    """ChunkedRetriever is a Retriever: index() takes {doc_id: text} (no title to prefix) and a long
    document is found by a query about its last chunk."""
    from bow_encoder import BagOfWordsEncoder
    from harness.cache import Cache
    from harness.protocols import Retriever
    from harness.retrieval.chunking import Chunking
    from harness.retrieval.retrievers import ChunkedRetriever

    filler = " ".join(f"word{i}" for i in range(200))
    corpus = {"long": filler + " zebra crossing", "short": "a zebra in the zoo", "other": "nothing here"}
    retriever = ChunkedRetriever(BagOfWordsEncoder(), Cache(tmp_path), Chunking(size=8, overlap=2))
    assert isinstance(retriever, Retriever)
    retriever.index(corpus)
    assert retriever.chunk_details()["chunks"] > 20
    run = retriever.search({"q": "zebra crossing"}, top_k=2)
    assert list(run["q"]) == ["long", "short"]
