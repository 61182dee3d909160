"""Animations of islands forming: one frame per recorded step, the expected size, movies."""

import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from matplotlib import animation
from PIL import Image

import glomsim as gs
from analysis import plot
from analysis.animate import frame_size
from glomsim.cli import main
from glomsim.scenes import make_scene

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def scene_run():
    scene = make_scene(grid=(6, 6), dim=8, levels=2, n_objects=1, noise=0.1, seed=0)
    cfg = gs.GlomConfig(levels=2, dim=8, grid=(6, 6), steps=6, attention=gs.Attention(radius=1.5))
    return gs.simulate(cfg, gs.identity_weights(cfg), inputs=scene,
                       init=np.asarray(scene.tokens)[None].repeat(2, 0))  # fmt: skip


def _frames(path):
    with Image.open(path) as im:
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
        return im.size, frames


def test_one_frame_per_recorded_step_at_the_expected_size(scene_run, tmp_path):
    path = plot.animate(scene_run, tmp_path / "islands.gif", dpi=40, panel_size=1.5,
                        threshold=0.95)  # fmt: skip
    size, frames = _frames(path)
    assert len(frames) == scene_run.sizes["time"] >= 5
    assert size == frame_size(2, 2, 1.5, 40)  # ground truth + islands, 2 levels
    # every frame differs from the one before (at least the step in the title changes)
    assert all((a != b).any() for a, b in zip(frames, frames[1:], strict=False))
    path = plot.animate(scene_run, tmp_path / "some.gif", times=[0, 2, 4, 5, 6], levels=[1],
                        dpi=40, panel_size=1.5)  # fmt: skip
    size, frames = _frames(path)
    assert len(frames) == 5 and size == frame_size(2, 1, 1.5, 40)


def test_a_movie_run_shows_its_frames_beside_the_islands(scene_run, tmp_path):
    # a hand-built movie run: the input frame changes at step 3, with its own labels
    n_times = scene_run.sizes["time"]
    frame_of_time = np.minimum(np.maximum(np.arange(n_times) - 1, 0) // 3, 1)
    tokens = np.asarray(scene_run["input"].values)
    labels = np.asarray(scene_run["label"].values)
    moved = np.roll(labels.reshape(2, 6, 6), 2, axis=2).reshape(2, 36)
    ds = scene_run.drop_vars(["input", "label"]).assign_coords(frame=("time", frame_of_time))
    ds["input"] = (("frame", "column", "feature"), np.stack([tokens, tokens[::-1]]))
    ds["label"] = (("frame", "level", "column"), np.stack([labels, moved]))
    path = plot.animate(ds, tmp_path / "movie.gif", dpi=40, panel_size=1.5, threshold=0.95)
    size, frames = _frames(path)
    assert len(frames) == n_times
    assert size == frame_size(3, 2, 1.5, 40)  # input frame, ground truth, islands
    # the ground truth shown is the frame's: the last step is judged against the moved one
    fig = plot.island_maps(ds, times=[-1], threshold=0.95)
    truth_panel = np.asarray(fig.axes[0].images[0].get_array())[..., :3]
    from analysis._colours import BACKGROUND

    grey = (truth_panel == BACKGROUND).all(axis=-1)
    np.testing.assert_array_equal(grey, moved[0].reshape(6, 6) == 0)


@pytest.mark.skipif(not animation.writers.is_available("ffmpeg"), reason="no ffmpeg")
def test_mp4_where_ffmpeg_is_installed(scene_run, tmp_path):
    path = plot.animate(scene_run, tmp_path / "islands.mp4", dpi=40, panel_size=1.5)
    assert path.stat().st_size > 1000


def test_bad_animation_arguments_fail_before_any_work(scene_run, tmp_path):
    with pytest.raises(ValueError, match=r"path='.*islands\.avi' must end in one of"):
        plot.animate(scene_run, tmp_path / "islands.avi")
    with pytest.raises(ValueError, match="fps=0"):
        plot.animate(scene_run, tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match="levels"):
        plot.animate(scene_run, tmp_path / "a.gif", levels=[5])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        plot.animate(scene_run, tmp_path / "file" / "a.gif")


@pytest.fixture(scope="module")
def saved_run(scene_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "run.zarr"
    gs.save(scene_run, path)
    return path


def test_glomsim_plot_animate_writes_the_figures_and_a_gif(saved_run, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(saved_run), "-o", str(out), "--animate", "--threshold", "0.95"]) == 0
    for name in ("islands.png", "convergence.png", "projection.png", "islands.gif"):
        assert (out / name).stat().st_size > 2000, name
    assert f"wrote {out / 'islands.gif'}" in capsys.readouterr().out
    _, frames = _frames(out / "islands.gif")
    assert len(frames) == 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "{file}"], "is a file; give a folder"),
        (["-o", "{file}/figs"], "is a file, not a folder"),
        (["--threshold", "2"], "--threshold=2.0 is not allowed"),
    ],
)
def test_glomsim_plot_bad_output_is_one_line_exit_2(saved_run, tmp_path, args, message):
    file = tmp_path / "taken.png"
    file.write_text("not a folder")
    args = [a.format(file=file) for a in args]
    proc = subprocess.run([sys.executable, "-m", "glomsim.cli", "plot", str(saved_run), *args],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert file.read_text() == "not a folder"
