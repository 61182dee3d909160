"""analysis.stability, perturbation_recovery and lyapunov against maps with known spectra."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import glomsim as gs
from analysis.stability import lyapunov, perturbation_recovery, stability
from glomsim.reference import neighbourhood

pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _mixing_matrix(cfg, w_prev, w_att):
    """The lazy uniform-averaging matrix (w_prev I + w_att A) / (w_prev + w_att)."""
    allowed = neighbourhood(cfg.position_array(), cfg.attention_at(0).radius).astype(float)
    a = allowed / allowed.sum(1, keepdims=True)
    return (w_prev * np.eye(len(a)) + w_att * a) / (w_prev + w_att)


@pytest.fixture(scope="module")
def degroot():
    cfg = gs.GlomConfig(
        levels=1,
        dim=2,
        grid=(1, 9),
        steps=400,
        dtype="float64",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=1, attention=1),
        attention=gs.Attention(beta=0.0, radius=2.0),
    )
    w = gs.identity_weights(cfg)
    ds = gs.simulate(cfg, w, init=np.random.default_rng(0).normal(size=(1, 9, 2)))
    return cfg, w, ds


@pytest.fixture(scope="module")
def friedkin_johnsen():
    """Bottom-up input pins the level: no neutral direction, radius (w_p + w_a) / S."""
    cfg = gs.GlomConfig(
        levels=1,
        dim=2,
        grid=(1, 7),
        steps=60,
        dtype="float64",
        mix=gs.Mix(bottom_up=0.5, top_down=0, previous=1, attention=2),
        attention=gs.Attention(beta=0.0, radius=1.0),
    )
    w = gs.identity_weights(cfg)
    u = np.random.default_rng(1).normal(size=(7, 2))
    return cfg, w, gs.simulate(cfg, w, inputs=u)


def test_consensus_spectrum_is_the_mixing_matrix_with_neutral_shifts_apart(degroot):
    cfg, w, ds = degroot
    out = stability(cfg, w, ds, k=4)
    ev = np.sort(np.abs(np.linalg.eigvals(_mixing_matrix(cfg, 1, 1))))[::-1]
    assert out.attrs["method"] == "dense"
    assert int(out.neutral_dimension) == cfg.dim  # one island, every direction of shift
    assert out.island_count.values.tolist() == [1]
    assert float(out.spectral_radius) == pytest.approx(1.0, abs=1e-8)
    assert float(out.spectral_radius_transverse) == pytest.approx(ev[1], rel=1e-8)
    # the transverse spectrum is the mixing matrix's without its 1, once per feature
    np.testing.assert_allclose(
        np.abs(out.transverse_eigenvalues_real.values), np.repeat(ev[1:3], 2), rtol=1e-7
    )
    assert float(out.fixed_point_residual) < 1e-12
    for name in out.data_vars:
        assert {"long_name", "units"} <= set(out[name].attrs), name


def test_matrix_free_arnoldi_agrees_with_the_dense_jacobian(degroot):
    cfg, w, ds = degroot
    dense = stability(cfg, w, ds, k=4)
    arnoldi = stability(cfg, w, ds, k=4, dense_max=4)
    assert arnoldi.attrs["method"] == "arnoldi"
    for name in ("spectral_radius", "spectral_radius_transverse"):
        assert float(arnoldi[name]) == pytest.approx(float(dense[name]), rel=1e-7)
    np.testing.assert_allclose(
        arnoldi.eigenvalues_real.values, dense.eigenvalues_real.values, rtol=1e-7
    )


def test_pinned_level_has_no_neutral_subspace(friedkin_johnsen):
    cfg, w, ds = friedkin_johnsen
    out = stability(cfg, w, ds)
    assert int(out.neutral_dimension) == 0
    expect = (1 + 2) / 3.5
    assert float(out.spectral_radius) == pytest.approx(expect, rel=1e-8)
    assert float(out.spectral_radius_transverse) == pytest.approx(expect, rel=1e-8)


def test_delay_two_acts_on_the_last_two_states():
    """levels=2, identity nets, no attention: a linear map whose companion matrix is known.

    a_t = (u + b_{t-2} + a_{t-1}) / 3 (level 0),  b_t = (a_{t-1} + b_{t-1}) / 2 (top level).
    """
    cfg = gs.GlomConfig(
        levels=2,
        dim=2,
        grid=(1, 3),
        steps=5,
        dtype="float64",
        top_down_delay=2,
        mix=gs.Mix(bottom_up=1, top_down=1, previous=1, attention=0),
    )
    w = gs.identity_weights(cfg)
    ds = gs.simulate(cfg, w, inputs=np.ones((3, 2)))
    out = stability(cfg, w, ds, k=4)
    # state (a_{t-1}, b_{t-1}, a_{t-2}, b_{t-2}) per column and feature
    companion = np.array([[1 / 3, 0, 0, 1 / 3], [1 / 2, 1 / 2, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    ev = np.linalg.eigvals(companion)
    assert out.attrs["state_size"] == 2 * 2 * 3 * 2
    assert float(out.spectral_radius) == pytest.approx(np.abs(ev).max(), rel=1e-8)
    assert int(out.neutral_dimension) == 0
    thin = gs.simulate(cfg, w, inputs=np.ones((3, 2)), record_every=5, steps=10)
    with pytest.raises(ValueError, match="top_down_delay=2"):
        stability(cfg, w, thin)


def test_identity_nets_make_the_joint_shift_of_linked_levels_neutral():
    """Level 1 reads level 0 bottom-up (identity net): shifting level 0 alone, or level 1
    alone, is not neutral, but shifting both together is: dim neutral directions."""
    cfg = gs.GlomConfig(
        levels=2,
        dim=2,
        grid=(1, 4),
        steps=0,
        dtype="float64",
        mix=[gs.Mix(bottom_up=0, top_down=0), gs.Mix(bottom_up=1, top_down=0)],
        attention=gs.Attention(beta=0.0, radius=1.0),
    )
    w = gs.identity_weights(cfg)
    ds = gs.simulate(cfg, w, init=np.full((2, 4, 2), 0.3))
    out = stability(cfg, w, ds)
    assert int(out.neutral_dimension) == 2
    assert out.island_count.values.tolist() == [1, 1]
    assert float(out.neutral_defect) < 1e-8
    assert float(out.spectral_radius) == pytest.approx(1.0, abs=1e-8)
    assert float(out.spectral_radius_transverse) < 1


def test_wrong_weights_and_shapes_are_rejected(degroot):
    cfg, w, ds = degroot
    other = gs.random_weights(cfg, seed=1)
    with pytest.raises(ValueError, match="weights_hash"):
        stability(cfg, other, ds)
    with pytest.raises(ValueError, match="k=0"):
        stability(cfg, w, ds, k=0)
    bigger = cfg.replace(grid=(1, 10))
    with pytest.raises(ValueError, match="n_columns|column"):
        stability(bigger, gs.identity_weights(bigger), ds)


def test_perturbation_recovery_contracts_at_the_spectral_radius(friedkin_johnsen):
    cfg, w, ds = friedkin_johnsen
    before = ds.copy(deep=True)
    # a linear map: a large perturbation is fine, and stays far above rounding for 120 steps
    out = perturbation_recovery(cfg, w, ds, size=1e-3, steps=120)
    assert out.distance.dims == ("time",)
    assert out.time.values[0] == int(ds.time[-1])
    assert float(out.distance[0]) == pytest.approx(
        1e-3 * np.sqrt((ds.embedding.values[-1] ** 2).mean()), rel=1e-12
    )
    assert float(out.growth_factor[-1]) == pytest.approx(3 / 3.5, rel=1e-4)
    assert float(out.mean_growth_factor) < 1
    assert np.isnan(out.growth_factor.values[0])
    assert ds.identical(before)


def test_perturbation_of_consensus_levels_off_along_the_neutral_shift(degroot):
    cfg, w, ds = degroot
    out = perturbation_recovery(cfg, w, ds, steps=200)
    # the component along common shifts never decays: the growth factor tends to 1
    assert float(out.growth_factor[-1]) == pytest.approx(1.0, abs=1e-6)
    assert float(out.distance[-1]) > 0.1 * float(out.distance[0])


def test_lyapunov_exponent_of_a_linear_contraction(friedkin_johnsen):
    cfg, w, ds = friedkin_johnsen
    out = lyapunov(cfg, w, ds, steps=200)
    # the tangent vector aligns with the leading eigenvector; the running mean lags behind
    assert float(out.local_exponent[-1]) == pytest.approx(math.log(3 / 3.5), rel=1e-5)
    assert float(out.exponent) == pytest.approx(math.log(3 / 3.5), rel=0.1)
    assert float(out.exponent) < 0
    assert float(out.multiplier) == pytest.approx(math.exp(float(out.exponent)))
    assert out.time.values.tolist() == list(range(61, 261))
    np.testing.assert_allclose(float(out.running_exponent[-1]), float(out.exponent))


@given(
    groups=st.lists(st.integers(2, 3), min_size=1, max_size=3),
    dim=st.integers(1, 3),
    w_prev=st.floats(0.25, 2.0),
    w_att=st.floats(0.25, 2.0),
    seed=st.integers(0, 2**16),
    values_equal=st.booleans(),
)
def test_pure_consensus_fixed_point_is_neutral_per_island_and_stable_across(
    groups, dim, w_prev, w_att, seed, values_equal
):
    """Islands are spatially separate groups that agree inside; equal values in two groups
    still make two islands, since they do not attend to each other."""
    positions = [(0.0, 10.0 * g + i) for g, size in enumerate(groups) for i in range(size)]
    cfg = gs.GlomConfig(
        levels=1,
        dim=dim,
        positions=positions,
        steps=0,
        dtype="float64",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=w_prev, attention=w_att),
        attention=gs.Attention(beta=0.0, radius=1.5),
    )
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(len(groups), dim))
    if values_equal:
        values[:] = values[0]
    init = np.concatenate([np.tile(v, (size, 1)) for v, size in zip(values, groups, strict=True)])[
        None
    ]
    w = gs.identity_weights(cfg)
    out = stability(cfg, w, gs.simulate(cfg, w, init=init), k=3)
    assert int(out.neutral_dimension) == dim * len(groups)
    assert 0 <= float(out.spectral_radius_transverse) < 1
    assert float(out.spectral_radius) == pytest.approx(1.0, abs=1e-8)


def test_continuation_resumes_a_mixing_schedule_where_the_run_stopped():
    """perturbation_recovery restarts simulate from E_T: the schedule must go on at T + 1."""
    from analysis.stability import _continuation_config

    cfg = gs.GlomConfig(
        levels=1,
        dim=2,
        grid=(1, 5),
        steps=9,
        dtype="float64",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=1, attention=[0.0, 0.5, 1.0, 2.0, 4.0, 8.0]),
        attention=gs.Attention(beta=0.0, radius=1.0),
    )
    w = gs.identity_weights(cfg)
    full = gs.simulate(cfg, w, init=np.random.default_rng(2).normal(size=(1, 5, 2)))
    for T in (0, 3, 6):
        rest = gs.simulate(
            _continuation_config(cfg, T, 9 - T), w, init=full.embedding.values[T], steps=9 - T
        )
        np.testing.assert_array_equal(rest.embedding.values, full.embedding.values[T:])
