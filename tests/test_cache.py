"""The embedding cache: nothing encoded twice, one edit re-encodes one text, a crash keeps finished blocks."""

from __future__ import annotations

import numpy as np
import pytest

from bow_encoder import BagOfWordsEncoder
from harness import cache as cache_mod
from harness.cache import Cache, CachedEncoder

TEXTS = [f"document number {i} about bees and hives" for i in range(10)]


def encoded(encoder):
    return sum(n for _, n in encoder.calls)


def test_second_pass_encodes_nothing_and_matches(tmp_path):
    base = BagOfWordsEncoder()
    first = CachedEncoder(base, Cache(tmp_path)).encode(TEXTS, input_type="document")
    assert encoded(base) == 10
    again = CachedEncoder(base, Cache(tmp_path))
    second = again.encode(TEXTS, input_type="document")
    assert encoded(base) == 10 and again.stats.hits == 10 and again.stats.computed == 0
    np.testing.assert_array_equal(first, second)


def test_changing_one_text_encodes_one(tmp_path):
    base = BagOfWordsEncoder()
    CachedEncoder(base, Cache(tmp_path)).encode(TEXTS, input_type="document")
    edited = TEXTS[:3] + ["an edited document"] + TEXTS[4:]
    CachedEncoder(base, Cache(tmp_path)).encode(edited, input_type="document")
    assert base.calls[-1] == ("document", 1)


def test_input_type_and_fingerprint_are_part_of_the_key(tmp_path):
    base = BagOfWordsEncoder()
    cache = Cache(tmp_path)
    CachedEncoder(base, cache).encode(TEXTS[:2], input_type="document")
    CachedEncoder(base, cache).encode(TEXTS[:2], input_type="query")
    other = BagOfWordsEncoder(dim=64)
    vectors = CachedEncoder(other, cache).encode(TEXTS[:2], input_type="query")
    assert encoded(base) == 4 and encoded(other) == 2 and vectors.shape == (2, 64)


def test_duplicates_are_encoded_once_and_order_is_kept(tmp_path):
    base = BagOfWordsEncoder()
    texts = ["bees", "hives", "bees"]
    vectors = CachedEncoder(base, Cache(tmp_path)).encode(texts, input_type="query")
    assert encoded(base) == 2
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(vectors[1], base.encode(["hives"], input_type="query")[0])


def test_interrupted_encoding_keeps_finished_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "BLOCK", 3)
    crashing = BagOfWordsEncoder(fail_after=2)  # two blocks of 3 succeed, the third is "Ctrl-C"
    with pytest.raises(KeyboardInterrupt):
        CachedEncoder(crashing, Cache(tmp_path)).encode(TEXTS, input_type="document")
    resumed = BagOfWordsEncoder()
    CachedEncoder(resumed, Cache(tmp_path)).encode(TEXTS, input_type="document")
    assert encoded(resumed) == 4


def test_unusable_cache_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(cache_mod.BenchError, match="cannot use embedding cache folder .*--cache-dir"):
        Cache(blocker / "cache")


def test_claims_are_taken_over_from_a_closed_or_dead_run(tmp_path):
    """A run's claims stop others from buying the same texts while it lives; once it is gone they are free."""
    hashes = [cache_mod.text_hash(t) for t in TEXTS[:3]]
    first, second = Cache(tmp_path), Cache(tmp_path)
    assert first.claim("fp", "query", hashes)[1] == hashes
    assert second.claim("fp", "query", hashes)[1:] == ([], hashes)  # alive: wait for it
    first.close()
    assert not (tmp_path / "claims" / f"{first.owner}.lock").exists()
    assert second.claim("fp", "query", hashes)[1] == hashes
    second._db.execute("UPDATE claims SET owner=?", ("0" * 32,))  # a run that died without closing (never second's own name)
    second._db.commit()
    assert Cache(tmp_path).claim("fp", "query", hashes)[1] == hashes
