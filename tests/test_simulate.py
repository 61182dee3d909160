"""simulate(): the Dataset it returns, its inputs and errors, and the default weights."""

import numpy as np
import pytest

import glomsim as gs
from glomsim import reference


@pytest.fixture(scope="module")
def small():
    cfg = gs.GlomConfig(levels=3, dim=6, grid=(3, 4), steps=7, attention=gs.Attention(radius=1.5))
    return cfg, gs.random_weights(cfg, seed=3)


def test_dataset_layout_and_metadata(small):
    cfg, w = small
    ds = gs.simulate(cfg, w)
    assert ds.embedding.dims == ("time", "level", "column", "feature")
    assert ds.embedding.shape == (8, 3, 12, 6)
    assert ds.embedding.dtype == np.float32
    assert ds.input.dims == ("column", "feature")
    assert ds.time.values.tolist() == list(range(8))
    # row-major grid: column 5 is row 1, col 1
    assert (float(ds.y[5]), float(ds.x[5])) == (1.0, 1.0)
    for name in list(ds.data_vars) + list(ds.coords):
        assert {"long_name", "units"} <= set(ds[name].attrs), name
    assert gs.GlomConfig.from_dataset(ds) == cfg
    assert ds.attrs["weights_hash"] == w.content_hash()
    assert ds.attrs["seed"] == cfg.seed and ds.attrs["glomsim_version"] == gs.__version__
    assert "simulate" in ds.attrs["history"]
    # time 0 is the initial state as given: the weights' initial levels in every column
    np.testing.assert_array_equal(
        ds.embedding.values[0], np.broadcast_to(w.init_levels[:, None, :], (3, 12, 6)).astype("f4")
    )


def test_default_weights_are_random_weights_of_the_seed(small):
    cfg, _ = small
    a = gs.simulate(cfg)
    b = gs.simulate(cfg, gs.random_weights(cfg, cfg.seed))
    assert a.attrs["weights_hash"] == b.attrs["weights_hash"]
    np.testing.assert_array_equal(a.embedding.values, b.embedding.values)


def test_record_every_keeps_multiples_and_the_last(small):
    cfg, w = small
    full = gs.simulate(cfg, w)
    thin = gs.simulate(cfg, w, record_every=3)
    assert thin.time.values.tolist() == [0, 3, 6, 7]
    np.testing.assert_array_equal(thin.embedding.values, full.embedding.sel(time=[0, 3, 6, 7]))


def test_steps_override_and_zero_steps(small):
    cfg, w = small
    assert gs.simulate(cfg, w, steps=2).time.values.tolist() == [0, 1, 2]
    assert gs.simulate(cfg, w, steps=0).time.values.tolist() == [0]


def test_init_of_shape_levels_dim_is_broadcast(small):
    cfg, w = small
    init = np.arange(18, dtype=float).reshape(3, 6)
    ds = gs.simulate(cfg, w, init=init, steps=1)
    assert np.all(ds.embedding.values[0] == init[:, None, :])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(init=np.zeros((3, 12, 5))), "init has shape"),
        (dict(init=np.full((3, 12, 6), np.nan)), "init contains NaN"),
        (dict(inputs=np.zeros((11, 6))), "inputs has shape"),
        (dict(inputs=np.full((12, 6), np.inf)), "inputs contains NaN"),
        (dict(inputs=np.zeros((3, 12, 12))), "patch embedding"),
        (dict(steps=-2), "steps"),
        (dict(record_every=0), "record_every"),
        (dict(rule="average"), "rule"),
        (dict(stop_when_settled=-1.0), "stop_when_settled"),
    ],
)
def test_bad_arguments_raise_before_work(small, kwargs, match):
    cfg, w = small
    with pytest.raises((ValueError, TypeError), match=match):
        gs.simulate(cfg, w, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_input_among_huge_finite_ones_is_found(small, bad):
    """Inputs are checked by one sum first: huge finite inputs overflow that sum without
    an error (even under np.errstate(all="raise")), and one NaN or inf among them is
    still named."""
    from glomsim.inputs import prepare_inputs

    cfg, w = small
    big = np.full((cfg.n_columns, cfg.dim), 3e38, dtype=np.float32)
    with np.errstate(all="raise"):
        tokens, _ = prepare_inputs(cfg.replace(dtype="float32"), w, big)
    np.testing.assert_array_equal(tokens, big)
    big[5, 3] = bad
    with np.errstate(all="raise"), pytest.raises(ValueError, match="inputs contains NaN or inf"):
        prepare_inputs(cfg.replace(dtype="float32"), w, big)


def test_weights_that_do_not_fit_are_named(small):
    cfg, w = small
    with pytest.raises(ValueError, match="weights.dim"):
        gs.simulate(cfg.replace(dim=5), w)
    with pytest.raises(ValueError, match="n_columns"):
        gs.simulate(cfg.replace(grid=(2, 2)), w)


def test_divergence_names_step_and_level_and_keeps_partial():
    # a top-down gain far above 1 with no normalisation grows without bound
    cfg = gs.GlomConfig(
        levels=2,
        dim=4,
        grid=(2, 2),
        steps=400,
        mix=gs.Mix(previous=0, attention=0),
        dtype="float32",
    )
    w = gs.random_weights(cfg, seed=0, gain=40.0)
    with pytest.raises(gs.SimulationDiverged) as err:
        gs.simulate(cfg, w, record_every=5)
    e = err.value
    assert f"step {e.step}" in str(e) and f"level {e.level}" in str(e)
    assert 1 <= e.step <= 400 and e.level in (0, 1)
    part = e.partial
    assert part.time.values[-1] < e.step
    assert np.isfinite(part.embedding.values).all()
    assert part.attrs["partial_until_step"] == int(part.time.values[-1])


def test_stop_when_settled_ends_early():
    cfg = gs.GlomConfig(
        levels=1,
        dim=2,
        grid=(1, 6),
        steps=500,
        dtype="float64",
        mix=gs.Mix(bottom_up=0),
        attention=gs.Attention(beta=0.0),
    )
    init = np.random.default_rng(0).standard_normal((1, 6, 2))
    ds = gs.simulate(cfg, gs.identity_weights(cfg), init=init, stop_when_settled=1e-9)
    last = int(ds.time[-1])
    assert last < 500 and ds.attrs["stopped_early_at"] == last
    step = np.sqrt(((ds.embedding[-1] - ds.embedding[-2]) ** 2).mean())
    assert step < 1e-9


def test_custom_rule_weighted_average_equals_builtin(small):
    """A user rule that re-implements the weighted average reproduces the built-in rule."""
    cfg, w = small
    cfg = cfg.replace(dtype="float64", mix=gs.Mix(previous=[0.5, 2.0], attention=0.7))

    def rule(previous, bottom_up, top_down, attention, mix):
        parts = [(mix[0], bottom_up), (mix[1], top_down), (mix[2], previous), (mix[3], attention)]
        parts = [(m, c) for m, c in parts if m > 0 and c is not None]
        return sum(m * c for m, c in parts) / sum(m for m, _ in parts)

    u = np.random.default_rng(1).standard_normal((cfg.n_columns, cfg.dim))
    a = gs.simulate(cfg, w, inputs=u, rule=rule).embedding.values
    b = gs.simulate(cfg, w, inputs=u).embedding.values
    assert np.abs(a - b).max() < 1e-12


def test_numba_jitted_rule_runs():
    import numba

    @numba.njit
    def rule(previous, bottom_up, top_down, attention, mix):
        return 0.5 * previous + 0.5 * attention

    cfg = gs.GlomConfig(levels=2, dim=3, grid=(2, 2), steps=3, dtype="float64")
    ds = gs.simulate(cfg, gs.identity_weights(cfg), init=np.ones((2, 4, 3)), rule=rule)
    assert np.allclose(ds.embedding.values[-1], 1.0)


def test_a_progress_meter_is_told_of_every_step(small):
    """``progress`` may be a meter (update(n), close()) as well as True; the run is the same."""
    cfg, w = small

    class Meter:
        steps, closed = 0, False

        def update(self, n):
            self.steps += n

        def close(self):
            self.closed = True

    meter = Meter()
    ds = gs.simulate(cfg, w, progress=meter)
    assert meter.steps == cfg.steps and meter.closed
    np.testing.assert_array_equal(ds.embedding.values, gs.simulate(cfg, w).embedding.values)


def test_rule_with_wrong_shape_is_reported():
    cfg = gs.GlomConfig(levels=1, dim=3, grid=(2, 2), steps=2)
    with pytest.raises(ValueError, match="rule returned shape"):
        gs.simulate(cfg, rule=lambda p, b, t, a, m: p[:1])


def test_image_inputs_through_patch_embedding():
    cfg = gs.GlomConfig(levels=2, dim=5, grid=(2, 3), steps=2, dtype="float64")
    w = gs.random_weights(cfg, seed=0, patch_size=2, channels=3)
    img = np.random.default_rng(0).standard_normal((3, 4, 6))
    ds = gs.simulate(cfg, w, inputs=img)
    # column 4 (row 1, col 1) sees the patch img[:, 2:4, 2:4] flattened (p1, p2, channel)
    patch = img[:, 2:4, 2:4].transpose(1, 2, 0).reshape(-1)
    np.testing.assert_allclose(ds.input.values[4], patch @ w.patch_w + w.patch_b)
    with pytest.raises(ValueError, match="grid"):
        gs.simulate(cfg, w, inputs=np.zeros((3, 6, 6)))
    with pytest.raises(ValueError, match="channels"):
        gs.simulate(cfg, w, inputs=np.zeros((1, 4, 6)))


def test_results_do_not_depend_on_numba_thread_count(small):
    import numba

    cfg, w = small
    cfg = cfg.replace(attention=gs.Attention(radius=float("inf")), steps=5)
    n = numba.get_num_threads()
    a = gs.simulate(cfg, w).embedding.values
    numba.set_num_threads(1)
    try:
        b = gs.simulate(cfg, w).embedding.values
    finally:
        numba.set_num_threads(n)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(attention=gs.Attention(radius=2.0), top_down_delay=2),
        dict(levels=3, dim=16, attention=gs.Attention(kernel="cosine", beta=10.0)),
        dict(levels=1, dim=32),
    ],
)
def test_random_weights_keep_activity_alive_for_500_steps(kwargs):
    """Default nets: the state's RMS stays within 0.1x-10x of its start over 500 steps."""
    cfg = gs.GlomConfig(**{**dict(levels=5, dim=64, grid=(6, 6), steps=500), **kwargs})
    for seed in (0, 1):
        w = gs.random_weights(cfg, seed=seed)
        u = np.random.default_rng(seed).standard_normal((cfg.n_columns, cfg.dim))
        for inputs in (None, u):
            e = gs.simulate(cfg, w, inputs=inputs, record_every=25).embedding.values
            rms = np.sqrt((e.astype(float) ** 2).mean(axis=(1, 2, 3)))
            ratio = rms / rms[0]
            assert 0.1 < ratio.min() and ratio.max() < 10, ratio


def test_progress_bar_reports_steps(small, capsys):
    cfg, w = small
    gs.simulate(cfg, w, progress=True)
    assert "7/7" in capsys.readouterr().err


def test_reference_and_numba_agree_on_schedules_and_delay_two():
    cfg = gs.GlomConfig(
        levels=3,
        dim=4,
        grid=(3, 3),
        steps=6,
        top_down_delay=2,
        mix=gs.Mix(top_down=[0.0, 0.0, 1.0], attention=[1.0, 0.2]),
        dtype="float64",
        normalize="l2",
    )
    w = gs.random_weights(cfg, seed=5)
    ds = gs.simulate(cfg, w)
    want = reference.simulate(cfg, w, np.zeros((9, 4)), ds.embedding.values[0])
    assert np.abs(ds.embedding.values - want).max() < 1e-10


def test_replacing_a_weights_array_is_seen_by_the_next_run():
    """Converted nets are cached by the weights' content hash: replacing an array must
    change the hash, and the next run must use the new array (and match the reference)."""
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=3)
    w = gs.random_weights(cfg, seed=0)
    before = gs.simulate(cfg, w).embedding.values
    old_hash = w.content_hash()
    w.bu_w2 = w.bu_w2 * 5
    assert w.content_hash() != old_hash
    assert not w.bu_w2.flags.writeable  # replaced arrays are read-only copies too
    after = gs.simulate(cfg, w).embedding.values
    want = reference.simulate(cfg, w, np.zeros((9, 4)), after[0])
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, want, rtol=1e-4, atol=1e-5)


def test_results_share_read_only_coordinates_but_not_attrs():
    """Coordinates are cached per config: a result's coordinate values cannot be written
    in place (that would change other results), and attrs edited on one result stay there."""
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=3)
    a = gs.simulate(cfg)
    a.time.attrs["note"] = "mine"
    a.embedding.attrs["note"] = "mine"
    a.attrs["note"] = "mine"
    with pytest.raises(ValueError, match="read-only"):
        a.y.values[0] = 5.0
    b = gs.simulate(cfg)
    assert "note" not in b.time.attrs
    assert "note" not in b.embedding.attrs and "note" not in b.attrs
    assert float(b.y[0]) == 0.0 and b.time.values.tolist() == [0, 1, 2, 3]
    moved = a.assign_coords(y=a.y + 1)
    assert float(moved.y[0]) == 1.0 and float(gs.simulate(cfg).y[0]) == 0.0


def test_reused_plans_leak_nothing_between_runs():
    """Runs of one config reuse an idle plan's buffers: a run between two identical runs,
    on other inputs and from several threads at once, must not change what they return."""
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from glomsim._engine import idle_plans

    cfg = gs.GlomConfig(levels=3, dim=8, grid=(5, 5), steps=4, dtype="float64",
                        attention=gs.Attention(kernel="glom_pytorch"))  # fmt: skip
    w = gs.random_weights(cfg, seed=1)
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((25, 8)) for _ in range(8)]
    first = gs.simulate(cfg, w, inputs=inputs[0]).embedding.values
    gs.simulate(cfg, w, inputs=inputs[1], steps=2)
    again = gs.simulate(cfg, w, inputs=inputs[0]).embedding.values
    np.testing.assert_array_equal(again, first)
    assert any(key[0] == cfg for key in idle_plans())  # a plan was left for reuse
    want = reference.simulate(cfg, w, inputs[0], first[0])
    np.testing.assert_allclose(first, want, rtol=1e-10, atol=1e-12)
    serial = [gs.simulate(cfg, w, inputs=u).embedding.values for u in inputs]
    numba.set_num_threads(numba.get_num_threads())  # starts the threading layer
    if numba.threading_layer() not in ("omp", "tbb"):
        pytest.skip(f"numba's {numba.threading_layer()} layer is not safe across threads")
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda u: gs.simulate(cfg, w, inputs=u).embedding.values,
                                 inputs * 3))  # fmt: skip
    for k, got in enumerate(together):
        np.testing.assert_array_equal(got, serial[k % len(inputs)])


def test_a_run_does_not_import_dask():
    """A new process's first run pays for every import on its path: xarray, asked whether
    plain arrays are dask arrays, imported dask and dask.array (~0.25 s of ~1 s)."""
    import subprocess
    import sys

    code = (
        "import sys, glomsim as gs\n"
        "cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=2)\n"
        "gs.simulate(cfg)\n"
        "gs.simulate_ensemble(cfg, members=2, summaries_only=True)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dask'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_results_assembled_directly_equal_the_public_copy():
    """Results are assembled by xarray's private constructor (dataset._filled); they must
    equal what the public Dataset.copy(data=...) of the same skeleton gives, and own their
    attrs."""
    import xarray as xr

    from glomsim import dataset

    cfg = gs.GlomConfig(levels=2, dim=4, grid=(3, 3), steps=3)
    ds = gs.simulate_ensemble(cfg, members=2, summaries_only=True)
    # the key: (config, (times, members, summary steps, frames, lags), layout)
    (skeleton,) = [
        v for k, v in dataset._SKELETONS.items() if k[0] == cfg and k[1][:2] == ((0, 3), 2)
    ]
    data_vars = {k: (ds[k].dims, ds[k].values, {}) for k in ds.data_vars}
    direct = dataset._filled(skeleton, data_vars)
    public = skeleton.copy(
        deep=False, data={k: xr.Variable(d, v, fastpath=True) for k, (d, v, _) in data_vars.items()}
    )
    assert direct.identical(public)
    direct.embedding.attrs["note"] = 1
    direct.member.attrs["note"] = 1
    assert "note" not in skeleton.embedding.attrs and "note" not in skeleton.member.attrs
    np.testing.assert_array_equal(direct.embedding.values, ds.embedding.values)


@pytest.mark.parametrize("way", [{}, {"progress": False, "stop_when_settled": 1e-300}])
def test_a_thinned_run_that_diverges_keeps_its_last_finite_state(way):
    """Issue 16: with record_every=7 the state of the step before the failure was lost."""
    cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2), steps=400, dtype="float32",
                        mix=gs.Mix(previous=0, attention=0))  # fmt: skip
    w = gs.random_weights(cfg, seed=0, gain=40.0)
    with pytest.raises(gs.SimulationDiverged) as err:
        gs.simulate(cfg, w, record_every=7, **way)
    part = err.value.partial
    assert int(part.time[-1]) == err.value.step - 1
    full = gs.simulate(cfg, w, steps=err.value.step - 1)
    np.testing.assert_array_equal(part.embedding.values[-1], full.embedding.values[-1])
    np.testing.assert_array_equal(part.change.values, full.change.values)


def test_rerun_of_a_summaries_only_run_from_the_default_start_is_bit_for_bit(small):
    """Issue 16: the default start is a broadcast view and rerun passes an array; the
    start's rms no longer depends on that layout."""
    cfg, w = small
    ds = gs.simulate(cfg, w, summaries_only=True)
    again = gs.rerun(ds, w)
    for name in ("embedding", "rms", "change"):
        np.testing.assert_array_equal(again[name].values, ds[name].values)


def test_an_init_that_overflows_float32_is_named(small):
    """Issue 16: 1e39 is finite as given and inf in float32: checked after the cast."""
    cfg, w = small
    init = np.zeros((cfg.levels, cfg.n_columns, cfg.dim))
    init[1, 2, 3] = 1e39
    with pytest.raises(
        ValueError,
        match=r"^init contains 1e\+39 at level 1, column 2, feature 3, which overflows float32",
    ):
        gs.simulate(cfg, w, init=init)
    gs.simulate(cfg.replace(dtype="float64"), gs.random_weights(cfg.replace(dtype="float64"), 0),
                init=init, steps=0)  # fmt: skip
