"""analysis.energy: the dot kernel's interaction energy sum_ij exp(beta <x_i, x_j>)."""

import math

import numpy as np
import pytest

import glomsim as gs
from analysis.energy import energy
from glomsim.reference import neighbourhood

pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _run(attention, init, steps=3, normalize="none", levels=1):
    n, dim = init.shape[1:]
    cfg = gs.GlomConfig(
        levels=levels,
        dim=dim,
        grid=(1, n),
        steps=steps,
        dtype="float64",
        normalize=normalize,
        mix=gs.Mix(bottom_up=0, top_down=0),
        attention=attention,
    )
    return gs.simulate(cfg, gs.identity_weights(cfg), init=init)


def test_matches_a_direct_sum_over_the_attended_pairs():
    init = np.random.default_rng(0).normal(size=(2, 6, 3))
    att = [gs.Attention(beta=0.7, radius=2.0, include_self=False), gs.Attention(beta=-1.3)]
    ds = _run(att, init, levels=2)
    out = energy(ds)
    positions = gs.GlomConfig.from_dataset(ds).position_array()
    for lv, a in enumerate(att):
        mask = neighbourhood(positions, a.radius)
        if not a.include_self:
            np.fill_diagonal(mask, False)
        for t in range(ds.sizes["time"]):
            x = ds.embedding.values[t, lv]
            direct = np.exp(a.beta * (x @ x.T))[mask].sum()
            assert float(out.energy[t, lv]) == pytest.approx(direct, rel=1e-12)
            assert float(out.log_energy[t, lv]) == pytest.approx(math.log(direct), rel=1e-12)
        assert int(out.pairs[lv]) == mask.sum()
    assert out.beta.values.tolist() == [0.7, -1.3]
    for name in out.data_vars:
        assert {"long_name", "units"} <= set(out[name].attrs), name
    assert "analysis.energy(" in out.attrs["history"]


def test_huge_beta_overflows_energy_only_not_its_log():
    """exp(1000) overflows float64; log_energy stays exact and no warning is raised."""
    init = np.tile([0.6, 0.8], (1, 5, 1))  # one cluster of unit vectors
    out = energy(_run(gs.Attention(beta=1000.0), init, normalize="l2"))
    np.testing.assert_allclose(out.log_energy.values, math.log(25) + 1000.0, rtol=1e-14)
    assert np.isinf(out.energy.values).all()


def test_dask_backed_and_level_selection():
    init = np.random.default_rng(1).normal(size=(2, 5, 2))
    att = [gs.Attention(kernel="cosine"), gs.Attention(beta=0.5, radius=1.0)]
    ds = _run(att, init, levels=2, steps=6)
    before = ds.copy(deep=True)
    eager = energy(ds, level=1)
    lazy = energy(ds.chunk({"time": 2, "column": 2}), level=[1])
    assert eager.log_energy.dims == ("time", "level") and eager.level.values.tolist() == [1]
    np.testing.assert_allclose(lazy.log_energy.values, eager.log_energy.values, rtol=1e-14)
    assert ds.identical(before)


def test_other_kernels_raise_naming_level_and_kernel():
    init = np.random.default_rng(2).normal(size=(2, 4, 2))
    ds = _run([gs.Attention(), gs.Attention(kernel="gaussian")], init, levels=2)
    with pytest.raises(ValueError, match=r"level 1 uses attention.kernel='gaussian'.*'dot'"):
        energy(ds)
    with pytest.raises(ValueError, match="level=5"):
        energy(ds, level=5)
    assert energy(ds, level=0).sizes["level"] == 1
