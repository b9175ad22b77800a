"""vae_numpy.threads: row blocks, the shared pool, and where the thread count comes from."""
import itertools

import numpy as np
import pytest

from vae_numpy.threads import ENV_THREADS, num_threads, row_blocks, run_blocks, set_num_threads


def test_row_blocks_split_a_range_into_contiguous_parts():
    for n, parts in [(10, 3), (2, 5), (7, 1), (128, 2)]:
        blocks = row_blocks(n, parts)
        assert len(blocks) == min(n, parts)
        assert list(itertools.chain(*(range(n)[b] for b in blocks))) == list(range(n))


def test_run_blocks_runs_every_block_and_raises_their_errors(threads):
    seen = np.zeros(9)

    def fn(i):
        seen[i] += 1
    run_blocks(fn, list(range(9)))
    assert np.all(seen == 1)

    def fail(i):
        if i == 5:
            raise KeyError("block 5")
    with pytest.raises(KeyError, match="block 5"):
        run_blocks(fail, list(range(9)))


def test_thread_count_comes_from_the_override_then_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_THREADS, "3")
    assert num_threads() == 3
    set_num_threads(2)
    assert num_threads() == 2
    set_num_threads(None)
    monkeypatch.delenv(ENV_THREADS)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert num_threads() == 1
    monkeypatch.setenv(ENV_THREADS, "two")
    with pytest.raises(ValueError, match="VAE_NUMPY_NUM_THREADS='two'"):
        num_threads()
    with pytest.raises(ValueError, match="positive integer"):
        set_num_threads(0)
