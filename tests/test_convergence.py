"""analysis.convergence: residual, settling step and fitted rate on known trajectories."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import glomsim as gs
from analysis.convergence import convergence
from glomsim.dataset import create_dataset

pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _dataset(embedding, times=None, dtype="float64"):
    """A Dataset of a given trajectory (time, level, column, feature), no simulation."""
    T, L, N, D = embedding.shape
    cfg = gs.GlomConfig(levels=L, dim=D, grid=(1, N), steps=max(T - 1, 0), dtype=dtype)
    times = np.arange(T) if times is None else np.asarray(times)
    return create_dataset(
        cfg, gs.identity_weights(cfg), embedding.astype(dtype), times, np.zeros((N, D), dtype)
    )


@pytest.fixture(scope="module")
def degroot():
    """Lazy uniform averaging on a line: a linear run that converges geometrically."""
    cfg = gs.GlomConfig(
        levels=2,
        dim=2,
        grid=(1, 8),
        steps=300,
        dtype="float64",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=1, attention=1),
        attention=gs.Attention(beta=0.0, radius=1.0),
    )
    init = np.random.default_rng(5).normal(size=(2, 8, 2))
    return gs.simulate(cfg, gs.identity_weights(cfg), init=init)


def test_residual_is_rms_change_and_nan_at_the_start(degroot):
    out = convergence(degroot)
    e = degroot.embedding.values
    expect = np.sqrt(((e[1:] - e[:-1]) ** 2).mean(axis=(2, 3)))
    assert out.residual.dims == ("time", "level")
    assert np.isnan(out.residual.values[0]).all()
    np.testing.assert_allclose(out.residual.values[1:], expect, rtol=1e-12, atol=0)
    for name in out.data_vars:
        assert {"long_name", "units"} <= set(out[name].attrs), name
    assert "analysis.convergence(" in out.attrs["history"].splitlines()[-1]
    assert out.attrs["glomsim_config"] == degroot.attrs["glomsim_config"]


def test_record_every_divides_by_the_step_gap(degroot):
    cfg = gs.GlomConfig.from_dataset(degroot)
    thin = gs.simulate(
        cfg, gs.identity_weights(cfg), init=degroot.embedding.values[0], record_every=7
    )
    out = convergence(thin)
    e = degroot.embedding.values
    t = thin.time.values
    expect = np.sqrt(((e[t[1:]] - e[t[:-1]]) ** 2).mean(axis=(2, 3))) / np.diff(t)[:, None]
    np.testing.assert_allclose(out.residual.values[1:], expect, rtol=1e-12)
    # the per-step rate is still recovered from the thinned record
    full = convergence(degroot)
    np.testing.assert_allclose(out.rate.values, full.rate.values, rtol=1e-3)


def test_settled_step_is_the_last_crossing_of_the_relative_tolerance(degroot):
    out = convergence(degroot, rtol=1e-5)
    res = out.residual.values
    for lv in range(2):
        tol = 1e-5 * np.sqrt((degroot.embedding.values[-1, lv] ** 2).mean())
        assert out.tolerance.values[lv] == pytest.approx(tol, rel=1e-12)
        s = int(out.settled_step[lv])
        assert np.all(res[s + 1 :, lv] <= tol) and res[s, lv] > tol


def test_unsettled_run_reports_minus_one(degroot):
    short = degroot.isel(time=slice(0, 10))
    out = convergence(short)
    assert out.settled_step.values.tolist() == [-1, -1]
    assert out.settled_step.dtype == np.int64


def test_a_run_without_steps_has_no_residual_and_never_settles():
    cfg = gs.GlomConfig(levels=1, dim=2, grid=(1, 3), steps=0, dtype="float64")
    out = convergence(gs.simulate(cfg, gs.identity_weights(cfg)))
    assert np.isnan(out.residual.values).all()
    assert out.settled_step.values.tolist() == [-1]
    assert np.isnan(out.rate.values).all()


def test_dask_backed_input_gives_the_same_result_and_is_not_modified(degroot):
    before = degroot.copy(deep=True)
    eager = convergence(degroot)
    lazy = convergence(degroot.chunk({"time": 50}))
    for name in ("residual", "settled_step", "rate", "tolerance"):
        np.testing.assert_array_equal(eager[name].values, lazy[name].values)
    assert degroot.identical(before)


@pytest.mark.parametrize("rtol", [0.0, 1.0, -1e-3, "1e-6", True])
def test_bad_rtol_names_the_value(degroot, rtol):
    with pytest.raises(ValueError, match="rtol="):
        convergence(degroot, rtol=rtol)


def test_default_rtol_depends_on_the_dtype():
    traj = np.zeros((3, 1, 2, 1))
    traj[:, 0, :, 0] = [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    assert float(convergence(_dataset(traj)).tolerance[0]) == pytest.approx(1e-6)
    assert float(convergence(_dataset(traj, dtype="float32")).tolerance[0]) == pytest.approx(1e-4)


@given(rho=st.floats(0.2, 0.9), seed=st.integers(0, 2**16))
def test_geometric_trajectory_gives_its_rate(rho, seed):
    """E_t = c + rho**t v: the residual is geometric with ratio rho, down to the float floor."""
    rng = np.random.default_rng(seed)
    c, v = rng.normal(size=(2, 1, 3, 2))
    steps = int(np.ceil(np.log(1e-17) / np.log(rho)))
    t = np.arange(steps + 1)
    traj = c[None] + rho ** t[:, None, None, None] * v[None]
    out = convergence(_dataset(traj))
    # a fast decay leaves ~10 points above the floor, the last ones with ~1% rounding noise
    assert float(out.rate[0]) == pytest.approx(rho, rel=1e-3)
    assert not bool(out.finite_time[0])


@given(
    traj=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 2), st.integers(1, 4), st.integers(1, 3)),
        elements=st.floats(-1e3, 1e3),
    )
)
def test_residual_is_non_negative(traj):
    out = convergence(_dataset(traj))
    res = out.residual.values
    assert np.isnan(res[0]).all()
    assert np.all(res[1:] >= 0)
    assert set(np.unique(out.settled_step.values)) <= set(range(-1, traj.shape[0]))


@given(
    state=arrays(
        np.float64,
        st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 3)),
        elements=st.floats(-1e3, 1e3),
    ),
    steps=st.integers(1, 5),
)
def test_constant_trajectory_has_zero_residual_and_settles_at_once(state, steps):
    traj = np.broadcast_to(state, (steps + 1,) + state.shape).copy()
    out = convergence(_dataset(traj))
    assert np.all(out.residual.values[1:] == 0)
    assert np.all(out.settled_step.values == 0)
    assert np.all(np.isnan(out.rate.values))
    assert not out.finite_time.values.any()
