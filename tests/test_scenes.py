"""Synthetic part-whole scenes: layout, labels, codes, validation, and simulate(inputs=scene)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import glomsim as gs
from glomsim.scenes import make_scene


def _nested(fine, coarse):
    """Whether every fine label lies inside one coarse label."""
    pairs = np.unique(np.stack([fine, coarse]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1]


def test_shapes_and_dtypes():
    s = make_scene(grid=(10, 12), dim=8, levels=5, n_objects=2, patch_size=3, channels=2)
    assert s.tokens.shape == (120, 8) and s.tokens.dtype == np.float64
    assert s.labels.shape == (5, 120) and s.labels.dtype == np.int64
    assert s.image.shape == (2, 30, 36)
    assert s.positions.shape == (120, 2)
    # row-major numbering, as GlomConfig(grid=...)
    np.testing.assert_array_equal(s.positions, gs.GlomConfig(grid=(10, 12)).position_array())


def test_default_patch_size_is_4():
    s = make_scene(grid=(4, 5), dim=4, levels=3, n_objects=1)
    assert s.image.shape == (3, 16, 20)


@given(
    rows=st.integers(6, 16),
    cols=st.integers(6, 16),
    n_objects=st.integers(0, 3),
    parts=st.integers(1, 3),
    textures=st.integers(1, 2),
    seed=st.integers(0, 1000),
)
def test_labels_form_a_part_whole_hierarchy(rows, cols, n_objects, parts, textures, seed):
    s = make_scene(
        grid=(rows, cols),
        dim=4,
        levels=5,
        n_objects=n_objects,
        parts_per_object=parts,
        textures_per_part=textures,
        seed=seed,
    )
    tex, part, obj = s.labels[:3]
    assert _nested(tex, part) and _nested(part, obj)
    assert np.all(s.labels[3:] == 0)
    # every object shows all its parts and every part all its textures
    assert set(np.unique(obj)) - {0} == set(range(1, n_objects + 1))
    for k in range(1, n_objects + 1):
        assert len(np.unique(part[obj == k])) == parts
        for p in np.unique(part[obj == k]):
            assert len(np.unique(tex[part == p])) == textures
    # objects are the non-overlapping rectangles they claim to be
    for k, (top, left, h, w) in enumerate(s.objects, start=1):
        assert np.all(s.label_map(2)[top : top + h, left : left + w] == k)
        assert (obj == k).sum() == h * w


def test_tokens_are_texture_codes_plus_noise():
    s = make_scene(grid=(16, 16), dim=64, noise=0.1, seed=3)
    resid = s.tokens - s.codes[s.labels[0]]
    assert abs(resid.std() - 0.1) < 0.01
    # codes: textures of one part closer than parts of one object, closer than objects
    unit = s.codes / np.linalg.norm(s.codes, axis=1, keepdims=True)
    cos = unit @ unit.T
    tex = np.arange(len(s.codes))
    part = np.array([s.labels[1][s.labels[0] == t][0] for t in tex])
    obj = np.array([s.labels[2][s.labels[0] == t][0] for t in tex])
    off = ~np.eye(len(tex), dtype=bool)
    same_part = (part[:, None] == part[None, :]) & off
    same_obj = (obj[:, None] == obj[None, :]) & ~same_part & off
    other = obj[:, None] != obj[None, :]
    assert cos[same_part].mean() > cos[same_obj].mean() > cos[other].mean()


def test_noise_free_image_is_constant_within_texture_patterns():
    s = make_scene(grid=(8, 8), dim=4, n_objects=2, noise=0.0, patch_size=2, channels=1)
    patches = s.image.reshape(1, 8, 2, 8, 2).transpose(1, 3, 0, 2, 4).reshape(64, -1)
    for t in np.unique(s.labels[0]):
        same = patches[s.labels[0] == t]
        np.testing.assert_array_equal(same, np.broadcast_to(same[0], same.shape))


def test_seeded_and_read_only():
    a, b = make_scene(seed=5), make_scene(seed=5)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(make_scene(seed=6).tokens, a.tokens)
    with pytest.raises(ValueError):
        a.tokens[0, 0] = 1.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(grid=(0, 4)), "grid"),
        (dict(grid=(4,)), "grid"),
        (dict(dim=0), "dim"),
        (dict(levels=0), "levels"),
        (dict(n_objects=-1), "n_objects"),
        (dict(parts_per_object=0), "parts_per_object"),
        (dict(textures_per_part=1.5), "textures_per_part"),
        (dict(noise=-0.1), "noise"),
        (dict(noise=float("nan")), "noise"),
        (dict(seed=-1), "seed"),
        (dict(channels=0), "channels"),
        (dict(patch_size=0), "patch_size"),
        (dict(code_shares=(0.5, 0.5, 0.5)), "code_shares"),
        (dict(grid=(3, 3), n_objects=4), "n_objects"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make_scene(**kwargs)


def test_simulate_copies_labels_from_scene():
    scene = make_scene(grid=(6, 6), dim=4, levels=3, n_objects=1, seed=0)
    cfg = gs.GlomConfig(levels=3, dim=4, grid=(6, 6), steps=1, dtype="float64")
    ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene)
    np.testing.assert_array_equal(ds.label.values, scene.labels)
    np.testing.assert_allclose(ds.input.values, scene.tokens)


def test_simulate_uses_image_with_patch_embedding():
    from glomsim.reference import patch_tokens

    scene = make_scene(grid=(4, 4), dim=8, levels=2, n_objects=1, patch_size=2, seed=0)
    cfg = gs.GlomConfig(levels=2, dim=8, grid=(4, 4), steps=1, dtype="float64")
    w = gs.random_weights(cfg, seed=0, patch_size=2, channels=3)
    ds = gs.simulate(cfg, w, inputs=scene)
    np.testing.assert_allclose(ds.input.values, patch_tokens(np.asarray(scene.image), w))


# ----- movies ---------------------------------------------------------------------------
from glomsim.scenes import make_movie  # noqa: E402

_SMALL = dict(grid=(10, 12), dim=6, levels=4, parts_per_object=2, textures_per_part=2)


def test_a_still_movie_repeats_make_scene():
    kw = dict(_SMALL, n_objects=2, noise=0.2, seed=4)
    scene = make_scene(**kw)
    frozen = make_movie(n_frames=3, velocities=(0, 0), frame_noise="frozen", **kw)
    for f in range(3):
        np.testing.assert_array_equal(frozen.tokens[f], scene.tokens)
        np.testing.assert_array_equal(frozen.images[f], scene.image)
        np.testing.assert_array_equal(frozen.labels[f], scene.labels)
    np.testing.assert_array_equal(frozen.codes, scene.codes)
    assert frozen.objects == scene.objects
    # fresh noise: frame 0 is the scene, later frames the same codes with new noise
    fresh = make_movie(n_frames=3, velocities=(0, 0), **kw)
    np.testing.assert_array_equal(fresh.tokens[0], scene.tokens)
    np.testing.assert_array_equal(fresh.images[0], scene.image)
    assert not np.array_equal(fresh.tokens[1], scene.tokens)
    resid = fresh.tokens[1:] - scene.codes[scene.labels[0]]
    assert abs(resid.std() - 0.2) < 0.02


def test_shapes_and_read_only():
    m = make_movie(n_frames=4, n_objects=2, patch_size=2, channels=1, **_SMALL)
    assert m.tokens.shape == (4, 120, 6) and m.images.shape == (4, 1, 20, 24)
    assert m.labels.shape == (4, 4, 120) and m.labels.dtype == np.int64
    assert m.positions.shape == (4, 2, 2) and m.visible.shape == (4, 2)
    assert m.n_frames == 4 and m.levels == 4 and m.dim == 6
    np.testing.assert_array_equal(m.column_positions, gs.GlomConfig(grid=(10, 12)).position_array())
    for a in (m.tokens, m.images, m.labels, m.positions):
        with pytest.raises(ValueError):
            a.flat[0] = 1
    assert m.params["n_frames"] == 4 and m.params["grid"] == [10, 12]
    again = make_movie(n_frames=4, n_objects=2, patch_size=2, channels=1, **_SMALL)
    np.testing.assert_array_equal(m.tokens, again.tokens)


@given(
    vy=st.integers(-3, 3),
    vx=st.integers(-3, 3),
    n_objects=st.integers(1, 3),
    seed=st.integers(0, 500),
)
def test_label_maps_move_by_the_velocity_per_frame(vy, vx, n_objects, seed):
    # every object moves alike on a torus, so the whole label map rolls
    m = make_movie(n_frames=4, velocities=(vy, vx), edges="wrap", n_objects=n_objects,
                   seed=seed, **_SMALL)  # fmt: skip
    for f in range(4):
        for level in range(4):
            rolled = np.roll(m.label_map(0, level), (f * vy, f * vx), axis=(0, 1))
            np.testing.assert_array_equal(m.label_map(f, level), rolled)


def _expected_objects(m):
    """(frames, rows, cols) object label drawn from positions, sizes and depth alone."""
    rows, cols = m.grid
    out = np.zeros((m.n_frames, rows, cols), dtype=np.int64)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for f in range(m.n_frames):
        for k in m.depth:
            if not m.visible[f, k - 1]:
                continue
            top, left = m.positions[f, k - 1]
            _, _, h, w = m.objects[k - 1]
            dy, dx = yy - top, xx - left
            if m.edges == "wrap":
                dy, dx = dy % rows, dx % cols
            inside = (dy >= 0) & (dy < h) & (dx >= 0) & (dx < w)
            out[f][inside] = k
    return out


@given(
    velocities=st.lists(
        st.tuples(st.floats(-2.5, 2.5), st.floats(-2.5, 2.5)), min_size=3, max_size=3
    ),
    edges=st.sampled_from(["bounce", "wrap", "clip"]),
    depth=st.permutations([1, 2, 3]),
    seed=st.integers(0, 500),
)
def test_objects_are_drawn_where_they_are_front_on_top(velocities, edges, depth, seed):
    m = make_movie(n_frames=6, velocities=velocities, edges=edges, depth=depth, n_objects=3,
                   seed=seed, **_SMALL)  # fmt: skip
    np.testing.assert_array_equal(m.labels[:, 2].reshape(6, 10, 12), _expected_objects(m))
    # an object keeps its label ids: its textures and parts are a subset of frame 0's
    for f in range(6):
        for k in range(1, 4):
            mine = m.labels[f, 2] == k
            for level in (0, 1):
                assert set(m.labels[f, level][mine]) <= set(m.labels[0, level][m.labels[0, 2] == k])
        assert np.all(m.labels[f, 0][m.labels[f, 2] == 0] == 0)  # background is 0 throughout
        assert np.all(m.labels[f, 3] == 0)
        # positions are the start plus f * velocity, rounded (before the edge rule)
        if edges == "clip":
            start = np.array([o[:2] for o in m.objects])
            expected = np.floor(start + f * np.array(velocities) + 0.5)
            np.testing.assert_array_equal(m.positions[f], expected)


def test_occlusion_puts_the_front_object_on_top():
    kw = dict(_SMALL, grid=(8, 20), n_objects=2, seed=1)
    first = make_movie(n_frames=1, **kw)
    (t1, l1, _, _), (t2, l2, _, _) = first.objects
    # move object 2 onto object 1's corner in frame 1, object 1 still
    v = [(0, 0), (t1 - t2, l1 - l2)]
    for depth, front in (((1, 2), 2), ((2, 1), 1)):
        m = make_movie(n_frames=2, velocities=v, depth=depth, edges="clip", **kw)
        assert m.label_map(1, 2)[t1, l1] == front
        assert m.label_map(0, 2)[t1, l1] == 1
        # tokens follow the labels' textures (noise 0.1)
        np.testing.assert_allclose(m.tokens[1] - m.codes[m.labels[1, 0]], 0.0, atol=0.6)


def test_bounce_keeps_objects_whole_on_the_grid():
    m = make_movie(n_frames=30, velocities=(1.3, -2.2), n_objects=1, seed=2, **_SMALL)
    _, _, h, w = m.objects[0]
    assert np.all((m.labels[:, 2] == 1).sum(axis=1) == h * w)
    assert np.all((m.positions[:, 0, 0] >= 0) & (m.positions[:, 0, 0] <= 10 - h))
    assert np.all((m.positions[:, 0, 1] >= 0) & (m.positions[:, 0, 1] <= 12 - w))
    assert np.all(np.abs(np.diff(m.positions[:, 0], axis=0)) <= [2, 3])


def test_lifetimes_show_objects_from_start_to_stop():
    m = make_movie(n_frames=6, velocities=(0, 0), lifetimes=[(0, 6), (2, 4)], n_objects=2,
                   **_SMALL)  # fmt: skip
    shown = [(m.labels[f, 2] == 2).any() for f in range(6)]
    assert shown == [False, False, True, True, False, False]
    assert all((m.labels[f, 2] == 1).any() for f in range(6))
    assert m.visible[:, 1].tolist() == shown


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(n_frames=0), "n_frames"),
        (dict(velocities=(1, 2, 3)), "velocities"),
        (dict(velocities=[(0, 1)] * 3), "velocities"),
        (dict(velocities=(0, float("inf"))), "velocities"),
        (dict(velocities="fast"), "velocities"),
        (dict(lifetimes=[(2, 1), (0, 3)]), "lifetimes"),
        (dict(lifetimes=[(0, 1)]), "lifetimes"),
        (dict(depth=(1, 1)), "depth"),
        (dict(depth=(1, 3)), "depth"),
        (dict(edges="torus"), "edges"),
        (dict(frame_noise="new"), "frame_noise"),
        (dict(noise=-1.0), "noise"),
        (dict(grid=(2, 2)), "n_objects"),
        (dict(seed=-3), "seed"),
    ],
)
def test_bad_movie_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field) as err:
        make_movie(**{**dict(n_objects=2, grid=(8, 8), dim=4, levels=3), **kwargs})
    assert "\n" not in str(err.value)


def test_unknown_movie_argument_is_a_type_error():
    with pytest.raises(TypeError, match="speed"):
        make_movie(speed=2)


def test_simulate_copies_a_movies_labels_and_a_still_movie_is_the_static_run():
    kw = dict(grid=(6, 6), dim=4, levels=3, n_objects=1, seed=0)
    cfg = gs.GlomConfig(levels=3, dim=4, grid=(6, 6), steps=6, dtype="float64")
    w = gs.identity_weights(cfg)
    moving = make_movie(n_frames=3, velocities=(1, 1), **kw)
    ds = gs.simulate(cfg, w, frames=moving, steps_per_frame=2)
    np.testing.assert_array_equal(ds.label.transpose("frame", "level", "column"), moving.labels)
    np.testing.assert_allclose(ds.input.transpose("frame", "column", "feature"), moving.tokens)
    still = make_movie(n_frames=3, velocities=(0, 0), frame_noise="frozen", **kw)
    a = gs.simulate(cfg, w, frames=still, steps_per_frame=2)
    b = gs.simulate(cfg, w, inputs=make_scene(**kw))
    np.testing.assert_array_equal(a.embedding.values, b.embedding.values)
