"""The sweep keeps the background-free ARI and the boundary leak of every run with a scene."""

import numpy as np
import pytest

import analysis as an
import glomsim as gs
from glomsim import variables
from glomsim.scenes import make_scene
from glomsim.sweep import load_spec
from glomsim.sweep.runs import simulate_run

BASE = {"levels": 3, "dim": 4, "grid": [8, 8], "steps": 6, "dtype": "float64"}
SCENE = {"n_objects": 1, "parts_per_object": 2, "textures_per_part": 2}

pytestmark = pytest.mark.usefixtures("one_numba_thread")


def test_measure_keeps_objects_only_ari_and_boundary_leak_per_level():
    spec = load_spec({"sweep": {"seeds": [2]}, "base": dict(BASE), "scene": dict(SCENE)})
    got = simulate_run(spec, 0)
    for name in ("ari", "ari_objects", "boundary_leak"):
        assert got[name].shape == (3,) and got[name].dtype == np.float64, name
        assert variables.VARIABLES[name].dims == ("level",)
    # the same run by hand
    cfg = gs.GlomConfig(**{**BASE, "grid": (8, 8), "seed": 2})
    scene = make_scene(grid=(8, 8), dim=4, levels=3, seed=2, **SCENE)
    sim = gs.simulate(cfg, gs.random_weights(cfg, seed=2), inputs=scene)
    isl = an.islands(sim, time=-1)
    objects = an.agreement(sim, islands=isl, objects_only=True)
    np.testing.assert_array_equal(got["ari_objects"], objects["ari"].values[-1])
    every = an.agreement(sim, islands=isl)
    np.testing.assert_array_equal(got["boundary_leak"], every["boundary_leak"].values[-1])
    np.testing.assert_array_equal(got["ari"], every["ari"].values[-1])
    assert np.all((got["boundary_leak"][:3] >= 0) & (got["boundary_leak"][:3] <= 1))


def test_without_a_scene_nothing_is_scored():
    spec = load_spec({"sweep": {"seeds": [0]}, "base": dict(BASE), "scene": False})
    got = simulate_run(spec, 0)
    assert not {"ari", "ari_objects", "boundary_leak"} & set(got)
