"""The nets' packed products at both SIMD widths (glomsim._kernels.jit.VECTOR_BITS): the
host's width runs in every other test, the other one here, in a process of its own with
``GLOMSIM_VECTOR_BITS`` set. A CPU without AVX-512 runs 512-bit vectors split in two, so
both widths run on any x86 machine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import glomsim as gs
from glomsim import reference
from glomsim._kernels.jit import VECTOR_BITS

ROOT = Path(__file__).resolve().parents[1]

# the other width's process runs this test module's _case
RUN = """
import json
import numpy as np
from glomsim import simulate
from glomsim._kernels.jit import VECTOR_BITS
from glomsim._kernels.gemm import panel_width
from tests.test_vector_width import _case
out = dict(bits=VECTOR_BITS, width=panel_width(np.float32))
for dtype in ("float32", "float64"):
    cfg, w, img = _case(dtype)
    out[dtype] = simulate(cfg, w, inputs=img).embedding.values.tolist()
print(json.dumps(out))
"""


def _case(dtype):
    """The run both widths make: dim 20, hidden 80 and 20 columns, padded to whole panels
    at either width (32 or 16 columns), through local attention (level 0) and global
    attention's packed products (levels 1 and 2)."""
    cfg = gs.GlomConfig(levels=3, dim=20, grid=(4, 5), steps=4, dtype=dtype,
                        attention=(gs.Attention(kernel="glom_pytorch", radius=1.5),
                                   gs.Attention(kernel="glom_pytorch"),
                                   gs.Attention(kernel="cosine", beta=2.0)))  # fmt: skip
    w = gs.random_weights(cfg, seed=3, patch_size=2)
    img = np.random.default_rng(1).standard_normal((3, 8, 10))
    return cfg, w, img


def _other_width(tmp_path, bits):
    env = dict(os.environ, GLOMSIM_VECTOR_BITS=str(bits), GLOMSIM_CACHE_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, env=env,
                         check=True, timeout=600, cwd=tmp_path)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_other_vector_width_gives_the_same_states(tmp_path):
    other = 256 if VECTOR_BITS == 512 else 512
    r = _other_width(tmp_path, other)
    assert r["bits"] == other and r["width"] == 2 * other // 32
    for dtype, tol in (("float32", 1e-4), ("float64", 1e-10)):
        cfg, w, img = _case(dtype)
        here = gs.simulate(cfg, w, inputs=img)
        there = np.asarray(r[dtype])
        want = reference.simulate(cfg, w, here.input.values, here.embedding.values[0])
        scale = max(np.abs(want).max(), 1.0)
        assert np.abs(there - want).max() / scale < tol
        # each output entry is the same in-order sum of products at either width; the
        # padding adds exact zeros
        assert np.array_equal(there, here.embedding.values)


def test_a_vector_width_outside_256_and_512_is_refused_in_one_line(tmp_path):
    env = dict(os.environ, GLOMSIM_VECTOR_BITS="128")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "glomsim.cli", "run", "--steps", "1", "-o",
                          str(tmp_path / "run.nc")], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.returncode == 2 and not (tmp_path / "run.nc").exists()
    assert out.stderr.strip() == (
        "glomsim run: error: GLOMSIM_VECTOR_BITS='128' is not allowed; allowed: 256, 512"
    )
    # from Python: the kernels' first import raises the same message
    code = "import glomsim._kernels.jit"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .endswith("GLOMSIM_VECTOR_BITS='128' is not allowed; allowed: 256, 512")
    )
