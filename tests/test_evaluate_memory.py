"""Memory of the evaluation: bounded whatever the number of examples, results unchanged."""
import tracemalloc

import numpy as np

from vae_numpy import VAEConfig, init_params
from vae_numpy.evaluate import MI_CHUNK_ENTRIES, mutual_information

N, J = 3000, 10


def test_mutual_information_does_not_depend_on_its_batch_size():
    cfg = VAEConfig(input_dim=12, latent_dim=J, encoder_hidden=(8,), decoder_hidden=(8,))
    rng = np.random.default_rng(0)
    params = init_params(cfg, rng)
    x = rng.random((300, 12))
    values = {b: mutual_information(params, x, cfg, np.random.default_rng(1), batch_size=b)
              for b in (1, 7, 200)}
    assert values[1] == values[7] == values[200], values


def test_mutual_information_temporaries_are_bounded_not_batch_size_x_n():
    """At N = 3000, J = 10 the default 200 rows at a time would make (200, N, J) float64
    temporaries of 48 MB each; the rows are capped so that each holds MI_CHUNK_ENTRIES floats
    (8 MB), and a few of them at once stay below 4 x 8 MB."""
    cfg = VAEConfig(input_dim=12, latent_dim=J, encoder_hidden=(8,), decoder_hidden=(8,))
    rng = np.random.default_rng(0)
    params = init_params(cfg, rng)
    x = rng.random((N, 12))
    tracemalloc.start()
    mutual_information(params, x, cfg, np.random.default_rng(1))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bound = 4 * MI_CHUNK_ENTRIES * 8
    uncapped = 200 * N * J * 8
    assert peak < bound < uncapped, f"peak {peak / 2**20:.1f} MB >= {bound / 2**20:.0f} MB"
