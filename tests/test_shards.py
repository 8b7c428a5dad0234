"""Token shards: round trip, packed windows cover every token once per epoch, errors name the directory."""

from __future__ import annotations

import numpy as np
import pytest

from mimo.data.shards import ShardWriter, TokenStream
from mimo.errors import MimoError


def test_roundtrip_and_windows(tmp_path):
    w = ShardWriter(tmp_path, vocab_size=100, eos_id=0, shard_tokens=7)
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10]]
    for d in docs:
        w.add(d)
    index = w.close()
    assert len(index["shards"]) > 1 and index["total_tokens"] == 14
    s = TokenStream(tmp_path)
    flat = [t for d in docs for t in d + [0]]
    assert s.window(0, 14).tolist() == flat
    batch, nxt = s.batch(0, 2, 5)
    assert batch.shape == (2, 6) and nxt == 10
    assert batch[0].tolist() == flat[:6] and batch[1].tolist() == flat[5:11]
    assert s.window(12, 4).tolist() == flat[12:] + flat[:2]  # wraps into the next epoch


def test_errors(tmp_path):
    with pytest.raises(MimoError, match="not a token shard directory"):
        TokenStream(tmp_path)
    w = ShardWriter(tmp_path, vocab_size=10, eos_id=0)
    with pytest.raises(MimoError, match="out of range"):
        w.add(np.array([3, 11]))
