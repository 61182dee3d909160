"""Continued runs: ``simulate(cfg, w, init=ds)`` goes on from ds's last state with the
top-down delay's history, time continuing; m steps then n more equal one (m + n)-step run
on the shared steps, bit for bit, for every delay, dtype, recorder and frames."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import glomsim as gs
from glomsim import reference


def _cfg(delay, dtype, **kw):
    base = dict(levels=3, dim=5, grid=(3, 3), steps=4, dtype=dtype, top_down_delay=delay,
                mix=gs.Mix(previous=[0.0, 0.5, 1.0]),  # a schedule: read by the step's index
                attention=gs.Attention(kernel="cosine", radius=1.5))  # fmt: skip
    base.update(kw)
    return gs.GlomConfig(**base)


@settings(max_examples=12)
@given(
    m=st.integers(0, 6),
    n=st.integers(0, 6),
    delay=st.sampled_from([1, 2]),
    dtype=st.sampled_from(["float32", "float64"]),
    framed=st.booleans(),
    way=st.sampled_from(["full", "thinned", "summaries", "settle"]),
)
def test_m_steps_then_n_more_equal_one_run(m, n, delay, dtype, framed, way):
    cfg = _cfg(delay, dtype)
    w = gs.random_weights(cfg, seed=3)
    rng = np.random.default_rng(5)
    level0 = dict(frames=rng.standard_normal((4, 9, 5)), steps_per_frame=2) if framed else dict(
        inputs=rng.standard_normal((9, 5)))  # fmt: skip
    one = gs.simulate(cfg, w, steps=m + n, **level0)
    first_kw = {"full": {}, "thinned": {"record_every": 4}, "summaries": {"summaries_only": True},
                "settle": {"stop_when_settled": 1e-300}}[way]  # fmt: skip
    first = gs.simulate(cfg, w, steps=m, **level0, **first_kw)
    more = gs.simulate(cfg, w, init=first, steps=n)  # its inputs or frames from the Dataset
    assert [int(t) for t in more.time] == list(range(m, m + n + 1))
    np.testing.assert_array_equal(more.embedding.values, one.embedding.values[m:])
    np.testing.assert_array_equal(more.change.values[1:], one.change.values[m + 1 :])
    if framed:
        np.testing.assert_array_equal(more.frame.values, one.frame.values[m:])


def test_continuing_equals_the_reference_continued():
    cfg = _cfg(2, "float64", steps=5)
    w = gs.random_weights(cfg, seed=1)
    u = np.random.default_rng(0).standard_normal((9, 5))
    first = gs.simulate(cfg, w, inputs=u, record_every=5)
    assert "delay_history" in first  # thinned: the state before the last is kept apart
    more = gs.simulate(cfg, w, init=first, steps=4)
    past = first.delay_history.values
    want = reference.simulate(cfg, w, u, first.embedding.values[-1], 4, start=5, past=past)
    np.testing.assert_allclose(more.embedding.values, want, rtol=0, atol=1e-12)
    assert more.attrs["continued_from_step"] == 5


def test_a_continued_run_can_be_continued_and_saved(tmp_path):
    cfg = _cfg(2, "float32")
    w = gs.random_weights(cfg, seed=2)
    one = gs.simulate(cfg, w, steps=9)
    a = gs.simulate(cfg, w, steps=3, summaries_only=True)
    path = gs.save(a, tmp_path / "a.zarr", weights=w)
    b = gs.simulate(cfg, w, init=gs.open_dataset(path), steps=2, record_every=2)
    c = gs.simulate(cfg, w, init=b, steps=4)
    np.testing.assert_array_equal(c.embedding.values, one.embedding.values[5:])


def test_a_dataset_of_another_config_or_weights_is_named():
    cfg = _cfg(1, "float64")
    w = gs.random_weights(cfg, seed=0)
    ds = gs.simulate(cfg, w, steps=2)
    with pytest.raises(
        ValueError, match=r"init: .*another config: top_down_delay \(1 there, 2 here\)"
    ):
        gs.simulate(cfg.replace(top_down_delay=2), w, init=ds)
    with pytest.raises(ValueError, match="init: the Dataset was run with other weights"):
        gs.simulate(cfg, gs.random_weights(cfg, seed=1), init=ds)
    # steps is not part of the comparison: it is the run's length
    gs.simulate(cfg.replace(steps=7), w, init=ds, steps=1)


def test_a_dataset_without_the_states_needed_is_refused():
    cfg = _cfg(2, "float64")
    w = gs.random_weights(cfg, seed=0)
    ds = gs.simulate(cfg, w, steps=6, record_every=3).drop_vars(["delay_history", "lag"])
    with pytest.raises(ValueError, match=r"needs the states at steps 5, 6.*lacks step\(s\) 5"):
        gs.simulate(cfg, w, init=ds)
    # a full run's records hold them: nothing else is kept
    full = gs.simulate(cfg, w, steps=6)
    assert "delay_history" not in full
    gs.simulate(cfg, w, init=full, steps=1)


def test_an_ensemble_dataset_is_refused():
    cfg = _cfg(1, "float64")
    ens = gs.simulate_ensemble(cfg, members=2, steps=1)
    with pytest.raises(ValueError, match="init: a Dataset of an ensemble"):
        gs.simulate(cfg, gs.random_weights(cfg, cfg.seed), init=ens)


def test_cli_continues_a_saved_run(tmp_path, capsys):
    from glomsim.cli import main

    cfg = _cfg(2, "float32", grid=(4, 4), dim=8)
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(cfg.to_toml())
    first = tmp_path / "first.zarr"
    assert main(["run", str(cfg_path), "-o", str(first), "--steps", "3", "-q",
                 "--record-every", "2", "--no-scene"]) == 0  # fmt: skip
    second = tmp_path / "second.zarr"
    assert main(["run", "--continue", str(first), "--steps", "4", "-o", str(second), "-q"]) == 0
    assert main(["run", str(cfg_path), "-o", str(tmp_path / "one.zarr"), "--steps", "7",
                 "-q", "--no-scene"]) == 0  # fmt: skip
    one = gs.open_dataset(tmp_path / "one.zarr")
    got = gs.open_dataset(second)
    assert [int(t) for t in got.time] == [3, 4, 5, 6, 7]
    np.testing.assert_array_equal(got.embedding.values, one.embedding.values[3:])
    assert main(["run", str(cfg_path), "--continue", str(first), "-o",
                 str(tmp_path / "x.zarr")]) == 2  # fmt: skip
    assert "drop the config" in capsys.readouterr().err
