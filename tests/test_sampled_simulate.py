"""The mechanisms of issue 13 through ``glomsim.simulate``: a whole run equals the oracle
(the reference's functions step by step, tests/test_sampled_step.py), and a sampled run
records how its neighbourhoods were drawn.

The engine passes the mechanisms to the kernels: ``_engine/nets.py`` the activation ids,
``_engine/tables.py`` the contrastive parameters and sampled levels on the local path,
the plan a sampled level's lists per step (sampled runs step from Python), the dataset
the sampling attrs.
"""

import math

import numpy as np
import pytest

import glomsim as gs

from .test_sampled_step import oracle_step, rel

TOL = {"float64": 1e-10, "float32": 1e-4}


def oracle_run(cfg, w, inputs, init, steps):
    history = [np.asarray(init, np.float64)]
    for t in range(1, steps + 1):
        prev = history[t - 1]
        delayed = history[max(t - cfg.top_down_delay, 0)]
        history.append(oracle_step(cfg, w, prev, delayed, inputs, t))
    return np.stack(history)


CASES = {
    "sin-top-down": dict(top_down_activation="sin", bottom_up_activation="relu"),
    "contrastive-local": dict(attention=gs.Attention(kernel="contrastive", beta=3.0,
                                                     threshold=0.4, repulsion=0.5, radius=1.5)),
    "contrastive-dense": dict(attention=gs.Attention(kernel="contrastive", threshold=-0.2,
                                                     repulsion=2.0, include_self=False)),
    "sampled": dict(attention=[gs.Attention(sample=2, sample_width=1.0),
                               gs.Attention(kernel="cosine", sample=3, radius=2.5),
                               gs.Attention(sample=1, include_self=False)]),
}  # fmt: skip


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_simulate_equals_the_oracle(case, dtype):
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(4, 5), steps=5, dtype=dtype, top_down_delay=2,
                        normalize="layernorm", **CASES[case])  # fmt: skip
    w = gs.random_weights(cfg, seed=1)
    rng = np.random.default_rng(2)
    init = rng.standard_normal((3, 20, 6)).astype(dtype)
    inputs = rng.standard_normal((20, 6)).astype(dtype)
    ds = gs.simulate(cfg, w, inputs=inputs, init=init)
    want = oracle_run(cfg.replace(dtype="float64"), w, inputs.astype(float), init, cfg.steps)
    assert rel(ds.embedding.values, want) < TOL[dtype]


def test_a_sampled_run_records_its_draws():
    cfg = gs.GlomConfig(levels=1, dim=2, grid=(3, 3), steps=2, seed=4,
                        attention=gs.Attention(sample=2, sample_width=math.inf))  # fmt: skip
    ds = gs.simulate(cfg, gs.identity_weights(cfg))
    assert ds.attrs["sampling_seed"] == 4
    assert "default_rng((seed, t, l))" in ds.attrs["sampled_neighbourhoods"]
