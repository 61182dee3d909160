"""Where numba's cache of glomsim's kernels lives (glomsim._kernels.jit): beside the
source when writable, else a per-user folder (a read-only install), overridable by
GLOMSIM_CACHE_DIR, with NUMBA_CACHE_DIR honoured; the user's own numba functions keep
numba's settings. Each case runs in a fresh process (the choice is made at import), on a
small kernel of its own, so nothing heavy is compiled."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# the package's own folder made unwritable: root ignores permissions, so the probe's
# temporary file is refused there instead (the read-only install)
READ_ONLY = """
import tempfile
from pathlib import Path
import glomsim
_pkg = str(Path(glomsim.__file__).resolve().parent)
_real = tempfile.NamedTemporaryFile
def _refuse(*args, dir=None, **kwargs):
    if dir is not None and str(Path(dir).resolve()).startswith(_pkg):
        raise PermissionError(13, "read-only install", str(dir))
    return _real(*args, dir=dir, **kwargs)
tempfile.NamedTemporaryFile = _refuse
"""

KERNEL = """
import json, sys
import numba
sys.path.insert(0, sys.argv[1])
from glomsim._kernels import jit
import tiny_kernel
before = numba.config.CACHE_DIR
print(json.dumps(dict(cache=jit.CACHE, folder=str(jit.CACHE_DIR) if jit.CACHE_DIR else None,
                      value=tiny_kernel.twice(2.0), hits=sum(tiny_kernel.twice.stats.cache_hits.values()),
                      numba_cache_dir=numba.config.CACHE_DIR)))
"""


def _run(tmp_path, env_extra, read_only=False, code=None, args=()):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "tiny_kernel.py").write_text(
        textwrap.dedent("""
        from glomsim._kernels.jit import njit

        @njit
        def twice(x):
            return 2.0 * x
        """)
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "GLOMSIM_CACHE_DIR", "GLOMSIM_NUMBA_CACHE")}  # fmt: skip
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(ROOT), **env_extra)
    code = code or (READ_ONLY if read_only else "") + KERNEL
    out = subprocess.run([sys.executable, "-c", code, str(src), *args], capture_output=True,
                         text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _index_files(folder):
    return sorted(p.name for p in Path(folder).rglob("*.nbi"))


def test_a_read_only_install_caches_in_the_per_user_folder(tmp_path):
    first = _run(tmp_path, {}, read_only=True)
    folder = tmp_path / "xdg" / "glomsim" / "numba"
    assert first["cache"] and Path(first["folder"]) == folder.resolve()
    assert first["value"] == 4.0 and first["hits"] == 0
    assert any(name.startswith("tiny_kernel.twice") for name in _index_files(folder))
    # numba's own setting is left as it was for the user's numba functions
    assert first["numba_cache_dir"] == ""
    second = _run(tmp_path, {}, read_only=True)  # a new process loads it from there
    assert second["hits"] == 1


def test_glomsim_cache_dir_overrides_and_numba_cache_dir_is_honoured(tmp_path):
    own = tmp_path / "own"
    got = _run(tmp_path, {"GLOMSIM_CACHE_DIR": str(own)})
    assert Path(got["folder"]) == own.resolve() and _index_files(own)
    numba_dir = tmp_path / "numba_dir"
    got = _run(tmp_path, {"GLOMSIM_CACHE_DIR": str(own), "NUMBA_CACHE_DIR": str(numba_dir)})
    assert Path(got["folder"]) == numba_dir.resolve() and _index_files(numba_dir)
    assert got["numba_cache_dir"] == str(numba_dir)


def test_caching_off_and_an_unwritable_folder_mean_no_cache(tmp_path):
    got = _run(tmp_path, {"GLOMSIM_NUMBA_CACHE": "0"}, read_only=True)
    assert not got["cache"] and got["value"] == 4.0
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a folder cannot be made below a file
    got = _run(tmp_path, {"GLOMSIM_CACHE_DIR": str(blocker / "cache")})
    assert not got["cache"] and got["value"] == 4.0
    assert not (tmp_path / "xdg").exists()


def test_info_shows_the_cache_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(GLOMSIM_CACHE_DIR=str(tmp_path / "c"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "glomsim.cli", "info", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout)
    assert info["numba_cache"] is True
    assert info["numba_cache_dir"] == str((tmp_path / "c").resolve())


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_the_default_beside_the_source_is_kept_when_writable(tmp_path):
    got = _run(tmp_path, {})
    assert Path(got["folder"]) == (ROOT / "glomsim" / "_kernels" / "__pycache__").resolve()


def test_warmup_takes_only_the_dtypes_asked_and_refuses_others(capsys):
    import glomsim as gs
    from glomsim.cli import main

    with pytest.raises(ValueError, match="dtypes"):
        gs.warmup(dtypes=("float16",))
    assert gs.warmup(dtypes="float32") >= 0
    assert main(["warmup", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "float32 kernels" in out and "float64" not in out and "numba cache" in out


VARIANTS = """
import dataclasses
import json
import numpy as np
import glomsim as gs
from glomsim._kernels import attention, nets, step

def compiled():
    return dict(
        lean=[bool(k.signatures) for k in step.VARIANTS["lean"]],
        full=[bool(k.signatures) for k in step.VARIANTS["full"]],
        others=[bool(k.signatures) for k in (nets.relu_rows, nets.sin_rows,
                                              attention.contrastive_local)],
    )

got = {}
cfg = gs.GlomConfig(levels=2, dim=4, grid=(2, 2), steps=2)
gelu = gs.simulate(cfg, inputs=np.ones((4, 4)))
got["after_gelu"] = compiled()
relu = gs.simulate(dataclasses.replace(cfg, bottom_up_activation="relu"), inputs=np.ones((4, 4)))
got["after_relu"] = compiled()
got["differ"] = bool((gelu.embedding.values != relu.embedding.values).any())
print(json.dumps(got))
"""


def test_a_run_compiles_only_its_own_variant_and_variants_never_collide():
    """A fresh process: a GELU run (the lean variant) leaves the full variant and the
    activations and kernel it leaves out uncompiled and unloaded; a ReLU run then takes
    the full variant (its own cache entries: its result differs from the GELU run's)."""
    env = {k: v for k, v in os.environ.items() if k != "GLOMSIM_NUMBA_CACHE"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", VARIANTS], capture_output=True, text=True,
                         env=env, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # the lean run_steps ran (its step_all is compiled with it, or not at all when loaded)
    assert got["after_gelu"]["lean"][1] and got["after_gelu"]["full"] == [False, False]
    assert got["after_gelu"]["others"] == [False, False, False]
    assert got["after_relu"]["full"][1]  # its run_steps (and step_all, when compiled here)
    assert got["differ"]


OPT_LEVELS = """
import collections, json
from numba.core import codegen, config
seen = collections.Counter()
builder = codegen.CPUCodegen._pass_builder
def spy(self, **kw):
    if "opt" not in kw:  # the passes that read the level (numba's cheap pre-pass names 0)
        seen[int(config.OPT)] += 1
    return builder(self, **kw)
codegen.CPUCodegen._pass_builder = spy
import numba
from glomsim._kernels.jit import OPT, njit
def ours(x):
    return x * 2.0 + 1.0
ours = njit(ours)
ours(1.0)
mine, seen = dict(seen), collections.Counter()
numba.njit(lambda x: x - 1.0)(1.0)
print(json.dumps(dict(ours=mine, user=dict(seen), after=int(config.OPT), opt=OPT)))
"""


def test_glomsims_kernels_compile_at_its_opt_level_and_the_users_keep_numbas():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_OPT"}
    env["GLOMSIM_NUMBA_CACHE"] = "0"  # compiled here, never loaded
    out = subprocess.run([sys.executable, "-c", OPT_LEVELS], capture_output=True, text=True,
                         env=env, check=True, timeout=300)  # fmt: skip
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(r["ours"]) == {str(r["opt"])} and r["opt"] != 3
    assert set(r["user"]) == {"3"}  # numba's default level, restored after ours compiled
    assert r["after"] == 3


# the same kernel with the stamp of glomsim's kernel sources set as if they had changed
STAMPED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from glomsim._kernels import jit
jit._KERNELS_STAMP = (float(sys.argv[2]), 1, 1)
import tiny_kernel
tiny_kernel.twice(2.0)
print(json.dumps(dict(hits=sum(tiny_kernel.twice.stats.cache_hits.values()))))
"""


def test_an_edit_to_any_kernel_source_recompiles_every_cached_kernel(tmp_path):
    """numba checks only a function's own file; kernels inline each other across files,
    so their entries also carry the stamp of glomsim/_kernels (a changed stamp: compiled
    again, then loaded)."""
    env = {"GLOMSIM_CACHE_DIR": str(tmp_path / "own")}
    hits = [_run(tmp_path, env, code=STAMPED, args=(stamp,))["hits"]
            for stamp in ("1", "1", "2", "2", "1")]  # fmt: skip
    assert hits == [0, 1, 0, 1, 0]


def test_the_kernel_sources_stamp_follows_every_file(tmp_path):
    from glomsim._kernels import jit

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    before = jit.sources_stamp(tmp_path)
    os.utime(tmp_path / "b.py", (before[0] + 10, before[0] + 10))  # b edited later
    later = jit.sources_stamp(tmp_path)
    (tmp_path / "a.py").write_text("x = 10\n")  # a grown by one byte (its time is now)
    grown = jit.sources_stamp(tmp_path)
    assert len({before, later, grown}) == 3 and later[0] == before[0] + 10
    assert grown[1] == before[1] + 1 and grown[2] == before[2] == 2
    if jit.CACHE:  # glomsim's own kernels carry it beside their own file's stamp
        from glomsim._kernels.gemm import gemm_packed

        stamp = gemm_packed._cache._cache_file._source_stamp
        assert stamp[1] == jit.sources_stamp(Path(jit.__file__).parent)
