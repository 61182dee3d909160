"""Adaptive sweeps (``[refine]``), ``critical`` and ``[init] start = "path.npy"``.

The known case: Hegselmann-Krause (bounded kernel, ``Mix(previous=0, attention=1)``) with
n agents equally spaced at h. For epsilon < h no agent sees another and all n stay put:
n islands. For epsilon >= h the two end agents move inward by h/2 at the first step, and
HK ends in clusters more than epsilon >= h apart inside a range of (n - 2) h, so at most
n - 1 islands. The final island count therefore crosses n - 1/2 exactly at epsilon = h
(up to the bounded kernel's 1e-9 tolerance), whatever the number of steps.
"""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from glomsim.sweep import SpecError, critical, load_spec, open_sweep, run
from glomsim.sweep.refine import first_crossing

N_AGENTS, SPACING = 6, 0.37


def hk_spec(start, **refine):
    return {
        "sweep": {"name": "hk", "seeds": 2},
        "base": {"levels": 1, "dim": 1, "grid": [1, N_AGENTS], "steps": 20, "dtype": "float64",
                 "mix": {"bottom_up": 0, "top_down": 0, "previous": 0, "attention": 1},
                 "attention": {"kernel": "bounded", "epsilon": 0.3}},
        "aliases": {"epsilon": "attention.epsilon"},
        "axes": {"epsilon": [0.1, 0.3, 0.5], "steps": [15, 25]},
        "scene": False,
        "weights": {"kind": "identity"},
        "init": {"start": str(start)},
        "keep": {"islands": {"threshold": 0.999, "metric": "euclidean",
                             "connectivity": "global"}},
        "refine": {"axis": "epsilon", "measure": "island_count", "crossing": N_AGENTS - 0.5,
                   "tolerance": 0.02, **refine},
    }  # fmt: skip


@pytest.fixture
def start(tmp_path):
    path = tmp_path / "start.npy"
    np.save(path, (SPACING * np.arange(N_AGENTS)).reshape(1, N_AGENTS, 1))
    return path


def test_refinement_finds_the_known_hk_critical_value(start, tmp_path):
    spec = hk_spec(start)
    ds = run(spec, tmp_path / "hk.zarr", client="sync", progress=False)
    out = critical(ds)
    assert out.critical.dims == ("steps", "level")  # per level: no level in [refine]
    out = out.sel(level=0)
    tol = spec["refine"]["tolerance"]
    for steps in (15, 25):
        c = out.sel(steps=steps)
        assert abs(float(c.critical) - SPACING) <= tol
        assert float(c.bracket_high - c.bracket_low) <= tol
        assert float(c.bracket_low) < SPACING <= float(c.bracket_high)
        # every seed starts alike, so resampling seeds cannot move the crossing
        assert float(c.ci_low) == float(c.ci_high) == float(c.critical)
    from glomsim.cli.sweep import refine_text

    line = refine_text(ds, "hk.zarr")
    assert "2 of 2 crossings bracketed" in line and "rounds: " in line
    # every evaluated point, the refined axis sorted; points a cell skipped are absent
    eps = ds.epsilon.values
    assert (np.diff(eps) > 0).all() and len(eps) > 3
    assert set(np.unique(ds.status.values)) <= {-1, 1}
    assert ds.attrs["refine_rounds"] >= 3
    done = ds.status.isel(seed=0) == 1
    counts = ds.island_count.sel(level=0).isel(seed=0).where(done)
    below = counts.where(ds.epsilon < SPACING * (1 - 1e-9))
    assert (below.fillna(N_AGENTS) == N_AGENTS).all()
    assert (counts.where(ds.epsilon >= SPACING).fillna(0) < N_AGENTS).all()
    # the store reopens to the same Dataset, and critical reads it from the path too
    reopened = open_sweep(tmp_path / "hk.zarr")
    xr.testing.assert_identical(reopened.drop_attrs(deep=False), ds.drop_attrs(deep=False))
    xr.testing.assert_identical(critical(tmp_path / "hk.zarr").sel(level=0), out)


def test_max_rounds_stops_the_bisection_and_resume_adds_nothing(start, tmp_path):
    spec = hk_spec(start, max_rounds=2, tolerance=1e-6)
    store = tmp_path / "hk.zarr"
    ds = run(spec, store, client="sync", progress=False)
    assert ds.attrs["refine_rounds"] == 2
    c = critical(ds).isel(steps=0, level=0)
    assert float(c.bracket_high - c.bracket_low) == pytest.approx(0.2 / 4)
    again = run(spec, store, client="sync", progress=False)
    assert again.attrs["sweep_skipped"] == again.attrs["sweep_runs"]
    xr.testing.assert_identical(again.drop_attrs(deep=False), ds.drop_attrs(deep=False))


def test_first_crossing_skips_missing_points_and_interpolates():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    # rows: 4 -> 2 crosses 3 at 2.5; never crosses; rising across the gap (0, 3);
    # equal at 0 counts as above, so the bracket is (0, 1) and the crossing 0
    y = np.array([[5.0, np.nan, 4.0, 2.0, 1.0],
                  [1.0, 1.0, 1.0, 1.0, 1.0],
                  [2.0, np.nan, np.nan, 4.0, 4.0],
                  [3.0, 2.0, 1.0, 1.0, 1.0]])  # fmt: skip
    est, lo, hi = first_crossing(x, y, 3.0)
    np.testing.assert_array_equal(lo, [2.0, np.nan, 0.0, 0.0])
    np.testing.assert_array_equal(hi, [3.0, np.nan, 3.0, 1.0])
    np.testing.assert_allclose(est, [2.5, np.nan, 1.5, 0.0])


def _staircase(crossings, xs):
    """A sweep-like Dataset: seed s has 3 islands below crossings[s], 1 from there on."""
    y = np.where(np.asarray(xs)[None, :] < np.asarray(crossings)[:, None], 3, 1)
    return xr.Dataset(
        {"status": (("eps", "seed"), np.ones((len(xs), len(crossings)), np.int8)),
         "count": (("eps", "seed"), y.T)},
        coords={"eps": np.asarray(xs, float), "seed": np.arange(len(crossings))},
    )  # fmt: skip


def test_bootstrap_interval_over_seeds():
    xs = np.linspace(0, 2, 41)
    ds = _staircase([0.8, 0.9, 1.0, 1.1, 1.2, 1.0, 0.95, 1.05], xs)
    out = critical(ds, axis="eps", measure="count", crossing=2.0, resamples=400, seed=3)
    est, lo, hi = float(out.critical), float(out.ci_low), float(out.ci_high)
    # the seed-mean falls from 3 to 1 across [0.8, 1.2] and passes 2 at the median, 1.0
    assert 0.95 <= est <= 1.05
    assert 0.8 <= lo < est < hi <= 1.2
    again = critical(ds, axis="eps", measure="count", crossing=2.0, resamples=400, seed=3)
    xr.testing.assert_identical(again, out)
    wider = critical(ds, axis="eps", measure="count", crossing=2.0, confidence=0.99, seed=3)
    assert float(wider.ci_low) <= lo and float(wider.ci_high) >= hi
    # a failed run leaves its seed out of that point's mean, not the mean at NaN
    ds.status[5, 0] = 2
    assert np.isfinite(float(critical(ds, axis="eps", measure="count", crossing=2.0).critical))


def test_no_crossing_is_nan():
    ds = _staircase([5.0, 5.0], np.linspace(0, 2, 5))
    out = critical(ds, axis="eps", measure="count", crossing=2.0)
    for name in ("critical", "ci_low", "ci_high", "bracket_low", "bracket_high"):
        assert np.isnan(float(out[name])), name
    assert out.critical.attrs["long_name"] == "critical value"


@pytest.mark.parametrize(
    "refine, says",
    [
        ({"axis": "beta"}, "refine.axis='beta' is not allowed; allowed: epsilon, steps"),
        ({"measure": "ari"}, "refine.measure='ari' is not allowed; allowed: island_count"),
        ({"tolerance": 0}, "refine.tolerance=0 is not allowed; allowed: a finite number > 0"),
        ({"crossing": "two"}, "refine.crossing='two' is not allowed"),
        ({"max_rounds": 0}, "refine.max_rounds=0 is not allowed; allowed: an integer >= 1"),
        ({"level": 1}, "refine.level=1 is not allowed; allowed: 0..0 (levels)"),
        ({"colour": 1}, "refine: unknown key(s) colour; allowed: axis, measure"),
        ({"axis": "steps"}, "refine.axis: 'steps' cannot be bisected: the value 20.0"),
    ],
)
def test_bad_refine_keys_are_refused_in_one_line(start, refine, says):
    spec = hk_spec(start)
    spec["refine"].update(refine)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_refine_needs_its_keys_and_a_grid(start):
    spec = hk_spec(start)
    del spec["refine"]["crossing"]
    with pytest.raises(SpecError, match=r"refine\.crossing: missing"):
        load_spec(spec)
    spec = hk_spec(start)
    spec["sweep"]["mode"] = "zip"
    spec["axes"]["steps"] = [15, 25, 35]
    with pytest.raises(SpecError, match="refine: needs sweep.mode = 'grid'"):
        load_spec(spec)


def test_cli_refuses_a_bad_refine_with_exit_2(start, tmp_path):
    import tomli_w

    spec = hk_spec(start)
    spec["refine"]["measure"] = "purity"
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(spec))
    got = subprocess.run(
        [sys.executable, "-m", "glomsim.sweep", str(path), "-o", str(tmp_path / "o.zarr")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert got.returncode == 2
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "refine.measure='purity' is not allowed" in lines[0]
    assert not (tmp_path / "o.zarr").exists()


# ----- [init] start = "path.npy" --------------------------------------------------------------
def _start_spec(start):
    return {"base": {"levels": 2, "dim": 3, "grid": [2, 2], "steps": 2}, "scene": False,
            "init": {"start": start}}  # fmt: skip


def test_start_file_relative_to_the_spec_folder_and_broadcast(tmp_path):
    import tomli_w

    from glomsim.sweep.runs import prepare_run

    levels = np.arange(6.0).reshape(2, 3)
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "levels.npy", levels)
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(tomli_w.dumps(_start_spec("sub/levels.npy")))
    spec = load_spec(spec_path)
    assert spec.init["start"] == str((tmp_path / "sub" / "levels.npy").resolve())
    init = prepare_run(spec, 0)[3]
    assert init.shape == (2, 4, 3)
    np.testing.assert_array_equal(init, np.broadcast_to(levels[:, None, :], (2, 4, 3)))
    # the spec round-trips (workers parse its TOML) and a changed file is refused
    assert load_spec(spec.to_dict()) == spec
    np.save(tmp_path / "sub" / "levels.npy", levels + 1)
    with pytest.raises(SpecError, match="init.start: .* changed since the sweep was specified"):
        load_spec(spec.to_dict())


def test_start_file_of_the_wrong_shape_names_the_shape(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 3)))
    with pytest.raises(SpecError) as err:
        load_spec(_start_spec(str(tmp_path / "bad.npy")))
    msg = str(err.value)
    assert "shape (2, 5, 3)" in msg and "(2, 4, 3) = (levels, columns, dim)" in msg
    assert "\n" not in msg
    with pytest.raises(SpecError, match="init.start: .* cannot be read"):
        load_spec(_start_spec(str(tmp_path / "missing.npy")))
    with pytest.raises(SpecError, match=r"init.start='x.txt' is not allowed; allowed: weights"):
        load_spec(_start_spec("x.txt"))
