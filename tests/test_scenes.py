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
