"""Training without torch: exact gradients, loss going down, metadata, the CLI, bad input."""

import argparse
import json

import numpy as np
import pytest

import glomsim as gs
from glomsim.cli.train import register as register_cli
from glomsim.config import ACTIVATIONS
from glomsim.reference import ACTIVATION_FUNCTIONS
from glomsim.train import (
    NETS,
    TERMS,
    TRAINED,
    TrainingBatch,
    loss_and_grads,
    make_training_scenes,
    train,
)
from glomsim.train.losses import ACTIVATION_GRADS

TERM_WEIGHT = {
    "reconstruction": "reconstruction_weight",
    "island": "island_weight",
    "contrastive": "contrastive_weight",
}


def _small_cfg(**kw):
    base = dict(
        levels=3,
        dim=8,
        grid=(8, 8),
        steps=6,
        normalize="l2",
        dtype="float64",
        mix=gs.Mix(bottom_up=1, top_down=0.5, previous=1, attention=2),
        attention=gs.Attention(kernel="cosine", beta=8.0, radius=1.5),
    )
    base.update(kw)
    return gs.GlomConfig(**base)


def _gradcheck_setup():
    """Tiny float64 problem: 3 levels, 2 scenes of 6 rows, some unlabelled rows."""
    rng = np.random.default_rng(7)
    L, D, H = 3, 3, 4
    cfg = gs.GlomConfig(levels=L, dim=D, grid=(3, 4), hidden=H)
    w = gs.random_weights(cfg, seed=3)
    params = {k: np.array(getattr(w, k)) for k in TRAINED}
    labels = np.array(
        [
            [0, 0, 1, 1, 2, -1, 3, 3, 4, 4, 5, 5],
            [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, -1],
            [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
        ]
    )
    rows = labels.shape[1]
    batch = TrainingBatch(
        below=rng.normal(size=(L, rows, D)),
        above=rng.normal(size=(L - 1, rows, D)),
        target=rng.normal(size=(L, rows, D)),
        labels=labels,
        scene=np.repeat([0, 1], rows // 2),
    )
    return params, batch


def _relative_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_derivatives_are_exact(activation):
    """Each derivative against central differences of the reference's activation (ReLU
    away from its kink; GELU's exactly as before)."""
    z = np.linspace(-6, 6, 241) + (0.0125 if activation == "relu" else 0.0)
    h = 1e-6
    f = ACTIVATION_FUNCTIONS[activation]
    fd = (f(z + h) - f(z - h)) / (2 * h)
    assert _relative_error(ACTIVATION_GRADS[activation](z), fd) < 1e-8


def _check_against_central_differences(params, batch, grads, kw, who):
    """Every trained array's gradient against central differences of the whole loss."""
    h = 1e-6
    for name in TRAINED:
        p = params[name]
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up = loss_and_grads(params, batch, **kw)[0]
            p[idx] = old - h
            down = loss_and_grads(params, batch, **kw)[0]
            p[idx] = old
            fd[idx] = (up - down) / (2 * h)
        assert np.abs(grads[name]).max() > 0, f"{who}: no gradient reaches {name}"
        err = _relative_error(grads[name], fd)
        assert err < 1e-5, f"{who}: gradient of {name} off by {err:.2e}"


@pytest.mark.parametrize("acts", [("relu", "sin"), ("sin", "gelu")])
def test_gradients_match_central_differences_for_every_activation(acts):
    """The whole loss of the nets with other activations, every array checked."""
    params, batch = _gradcheck_setup()
    kw = dict(margin=-0.5, activations=acts)
    total, _, grads = loss_and_grads(params, batch, **kw)
    _check_against_central_differences(params, batch, grads, kw, acts)
    # the activation matters: GELU nets give another loss
    assert total != loss_and_grads(params, batch, margin=-0.5)[0]


@pytest.mark.parametrize("term", TERMS)
def test_gradients_match_central_differences(term):
    params, batch = _gradcheck_setup()
    # only this term counts; margin -0.5 keeps most hinges active, some are not
    kw = {w: 0.0 for w in TERM_WEIGHT.values()} | {TERM_WEIGHT[term]: 1.0, "margin": -0.5}
    total, parts, grads = loss_and_grads(params, batch, **kw)
    assert np.isfinite(total) and total > 0
    _check_against_central_differences(params, batch, grads, kw, term)


def test_parts_sum_to_total_and_absent_terms_are_nan():
    params, batch = _gradcheck_setup()
    kw = dict(reconstruction_weight=0.5, island_weight=2.0, contrastive_weight=3.0, margin=0.1)
    total, parts, _ = loss_and_grads(params, batch, **kw)
    expect = sum(kw[TERM_WEIGHT[t]] * np.nansum(parts[t]) for t in TERMS)
    assert total == pytest.approx(expect, rel=1e-12)
    # no top-down net at the top level; the top level has one island per scene, no negatives
    for t in TERMS:
        assert np.isnan(parts[t][-1, NETS.index("top_down")])
    assert np.isnan(parts["contrastive"][-1, 0])
    assert np.all(np.isfinite(parts["island"][:, 0]))


def test_island_term_is_zero_at_the_consensus():
    # predictions equal to their island's mean: no pull, and the gradient vanishes
    params, batch = _gradcheck_setup()
    L = batch.levels
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    target = np.zeros_like(batch.target)
    batch = TrainingBatch(batch.below, batch.above, target, batch.labels, batch.scene)
    _, parts, grads = loss_and_grads(
        zero, batch, reconstruction_weight=0, island_weight=1, contrastive_weight=0
    )
    assert np.all(parts["island"][: L - 1] == 0)
    assert all(np.all(g == 0) for g in grads.values())


@pytest.fixture(scope="module")
def trained():
    cfg = _small_cfg()
    scenes = make_training_scenes(cfg, 4, seed=0, n_objects=2)
    w, hist = train(cfg, scenes, epochs=15, batch_size=2, seed=0)
    return cfg, scenes, w, hist


def test_loss_decreases(trained):
    _, _, _, hist = trained
    total = hist.total.values
    assert np.all(np.isfinite(total))
    assert total[-1] < total[0]
    # and so does each bottom-up net's own objective (its terms may trade off: the top
    # level's island pull can grow while the contrastive push below it falls)
    w = json.loads(hist.attrs["training"])
    per_level = sum(
        w[TERM_WEIGHT[t]] * np.nan_to_num(hist[t].sel(net="bottom_up").values) for t in TERMS
    )
    assert np.all(per_level[-1] < per_level[0])


@pytest.mark.parametrize("acts", [("relu", "sin"), ("sin", "relu")])
def test_training_with_other_activations_lowers_the_loss(acts):
    """Bottom-up targets need no simulation: the nets with the config's activations
    (SIREN-initialised sine nets included) learn, and the weights say what they are."""
    cfg = _small_cfg(bottom_up_activation=acts[0], top_down_activation=acts[1])
    scenes = make_training_scenes(cfg, 4, seed=0, n_objects=2)
    w, hist = train(cfg, scenes, epochs=8, batch_size=2, seed=0, targets="bottom_up")
    total = hist.total.values
    assert np.all(np.isfinite(total)) and total[-1] < total[0]
    assert json.loads(json.dumps(w.meta))["config"]["bottom_up_activation"] == acts[0]


def test_learned_weights_beat_random_at_the_part_level_on_held_out_scenes():
    # the study's claim on a tiny version: islands at level 1 (parts) agree better with the
    # truth after training than with the random weights training started from, on scenes
    # not trained on. Over seeds 0-5 the gap was wide (learned >= 0.9, random <= 0.77).
    import analysis as an

    cfg = _small_cfg(
        dim=16,
        steps=20,
        attention=[gs.Attention(kernel="cosine", beta=8.0, radius=r) for r in (1.5, 2.0, np.inf)],
    )
    start = gs.random_weights(cfg, seed=0)
    scenes = make_training_scenes(cfg, 6, seed=100, n_objects=2)
    learned, _ = train(cfg, scenes, weights=start, epochs=15, batch_size=2, seed=0)
    held_out = make_training_scenes(cfg, 4, seed=200, n_objects=2)

    def ari(w):
        runs = [gs.simulate(cfg, w, inputs=s, record_every=cfg.steps) for s in held_out]
        return np.mean([an.agreement(ds.isel(time=[-1])).ari.sel(level=1).item() for ds in runs])

    assert ari(learned) > ari(start)


def test_settled_targets_run(trained):
    cfg, scenes, _, _ = trained
    w, hist = train(cfg, scenes[:2], epochs=2, batch_size=2, targets="settled", settle_steps=3)
    assert w.meta["training"]["targets"] == "settled"
    assert w.meta["training"]["settle_steps"] == 3
    assert np.all(np.isfinite(hist.total.values))


def test_training_is_reproducible(trained):
    cfg, scenes, w, _ = trained
    again, _ = train(cfg, scenes, epochs=15, batch_size=2, seed=0)
    assert again == w


def test_save_and_load_keep_the_settings(trained, tmp_path):
    cfg, _, w, hist = trained
    path = w.save(tmp_path / "learned.npz")
    back = gs.load_weights(path)
    assert back == w
    assert back.meta == w.meta
    meta = back.meta
    assert meta["kind"] == "learned"
    assert meta["training"]["epochs"] == 15 and meta["training"]["n_scenes"] == 4
    assert gs.GlomConfig.from_dict(meta["config"]) == cfg
    final = meta["final_losses"]["island"]["bottom_up"]
    assert final["0"] == pytest.approx(float(hist.island.sel(net="bottom_up")[-1, 0]))
    json.dumps(meta, allow_nan=False)  # strict JSON: no NaN for absent terms
    # what training does not touch stays as it was
    start = gs.random_weights(cfg, seed=0)
    np.testing.assert_array_equal(back.pos_code, start.pos_code)
    np.testing.assert_array_equal(back.init_levels, start.init_levels)
    assert not np.array_equal(back.bu_w1, start.bu_w1)
    # and the learned weights run
    ds = gs.simulate(cfg, back, inputs=make_training_scenes(cfg, 1, seed=5, n_objects=2)[0])
    assert np.all(np.isfinite(ds.embedding.values))


def test_token_sets_without_labels_train_reconstruction_only():
    cfg = _small_cfg(levels=2)
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(3, cfg.n_columns, cfg.dim))
    w, hist = train(
        cfg, tokens, epochs=3, island_weight=0, contrastive_weight=0, targets="bottom_up"
    )
    assert np.all(np.isnan(hist.island.values)) and np.all(np.isnan(hist.contrastive.values))
    assert np.all(np.isfinite(hist.reconstruction.sel(net="bottom_up").values))
    # (tokens, labels) pairs with one label row stand for every level
    labels = np.repeat(np.arange(4), cfg.n_columns // 4)
    w, hist = train(cfg, [(tokens[0], labels)], epochs=2, targets="bottom_up")
    assert np.all(np.isfinite(hist.island.sel(net="bottom_up").values))


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(epochs=0), "epochs"),
        (dict(epochs=2.5), "epochs"),
        (dict(lr=0.0), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(noise=-0.1), "noise"),
        (dict(island_weight=-1), "island_weight"),
        (dict(contrastive_weight=float("nan")), "contrastive_weight"),
        (dict(margin=1.0), "margin"),
        (dict(targets="teacher"), "targets"),
        (dict(settle_steps=0), "settle_steps"),
        (dict(seed=-1), "seed"),
        (dict(reconstruction_weight=0, island_weight=0, contrastive_weight=0), "weight"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    cfg = _small_cfg(levels=2)
    scenes = make_training_scenes(cfg, 1, seed=0, n_objects=1)
    with pytest.raises(ValueError, match=field):
        train(cfg, scenes, **kwargs)


def test_bad_data_names_the_item():
    cfg = _small_cfg(levels=2)
    with pytest.raises(ValueError, match=r"scenes_or_token_sets\[1\].*tokens"):
        train(
            cfg,
            [np.zeros((cfg.n_columns, cfg.dim)), np.zeros((3, 3))],
            island_weight=0,
            contrastive_weight=0,
        )
    with pytest.raises(ValueError, match="empty"):
        train(cfg, [])
    with pytest.raises(ValueError, match="island_weight"):
        train(cfg, [np.zeros((cfg.n_columns, cfg.dim))])
    with pytest.raises(ValueError, match="identity"):
        train(cfg, make_training_scenes(cfg, 1), weights=gs.identity_weights(cfg))
    with pytest.raises(ValueError, match=r"\bn=0"):
        make_training_scenes(cfg, 0)


def _parser():
    parser = argparse.ArgumentParser(prog="glomsim")
    register_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_train_writes_weights_with_settings(tmp_path, capsys):
    cfg = _small_cfg(levels=2, grid=(6, 6))
    conf = tmp_path / "c.toml"
    conf.write_text(cfg.to_toml())
    out = tmp_path / "w.npz"
    argv = ["train", str(conf), "-o", str(out), "--scenes", "2", "--epochs", "2"]
    args = _parser().parse_args(argv + ["--seed", "3", "--targets", "bottom_up"])
    assert args.func(args) == 0
    assert "w.npz" in capsys.readouterr().out
    w = gs.load_weights(out)
    w.check(cfg)
    assert w.meta["kind"] == "learned"
    assert w.meta["training"]["seed"] == 3 and w.meta["training"]["n_scenes"] == 2


@pytest.mark.parametrize(
    "extra,option",
    [
        (["--epochs", "0"], "--epochs"),
        (["--scenes", "0"], "--scenes"),
        (["--lr", "-1"], "--lr"),
        (["--targets", "nope"], "--targets"),
        (["-o", "w.txt"], "--output"),
    ],
)
def test_cli_bad_input_names_the_option(tmp_path, extra, option):
    args = _parser().parse_args(["train", "-o", str(tmp_path / "w.npz")] + extra)
    with pytest.raises(ValueError, match=option):
        args.func(args)
    assert not (tmp_path / "w.npz").exists()


def test_cli_bad_config_names_the_file(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text("levels = 0\n")
    args = _parser().parse_args(["train", str(conf), "-o", str(tmp_path / "w.npz")])
    with pytest.raises(ValueError, match="levels"):
        args.func(args)
