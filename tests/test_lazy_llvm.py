"""glomsim._kernels.lazy: while glomsim's kernels compile, a code library is optimised and
turned into machine code only when something asks for one of its functions' addresses.
Each case runs in a fresh process with its own cache folder: the results equal numba's own
(eager) finalisation bit for bit, a kernel only other kernels call is never optimised on
its own, its cache entry (bitcode) links into a caller compiled in a later process, and a
user's own numba function is finalised as numba does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import collections, hashlib, json, sys
import numpy as np
from numba.core import codegen
optimised = collections.Counter()
_own = codegen.CPUCodeLibrary._optimize_final_module
def spy(self):
    optimised[self.name] += 1
    return _own(self)
codegen.CPUCodeLibrary._optimize_final_module = spy
import numba
import glomsim as gs
from glomsim._kernels import step

cfg = gs.GlomConfig(levels=3, dim=8, grid=(4, 4), steps=4)
w = gs.random_weights(cfg, seed=1, patch_size=2)
img = np.random.default_rng(2).standard_normal((3, 8, 8)).astype(np.float32)
got = {}
for mode in sys.argv[1].split(","):
    kw = dict(stop_when_settled=1e-30) if mode == "stepwise" else {}
    states = gs.simulate(cfg, w, inputs=img, **kw).embedding.values
    got[mode] = hashlib.sha256(np.ascontiguousarray(states).tobytes()).hexdigest()
user = numba.njit(lambda x: x + 1.0)
value = user(1.0)
lib = next(iter(user.overloads.values())).library
print(json.dumps(dict(
    got=got, value=value, user_raw=bool(getattr(lib, "_glomsim_raw", False)),
    user_optimised=optimised[lib.name],
    tasks_optimised=sum(n for name, n in optimised.items()
                        if name.startswith(("net_task", "combine_task"))),
    task_hits=sum(sum(d.stats.cache_hits.values())
                  for d in (step.net_task_lean, step.combine_task_lean)),
)))
"""


def _run(modes, **env_extra):
    own = ("NUMBA_CACHE_DIR", "GLOMSIM_CACHE_DIR", "GLOMSIM_NUMBA_CACHE", "GLOMSIM_LAZY_LLVM")
    env = {k: v for k, v in os.environ.items() if k not in own}
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT, modes], capture_output=True, text=True,
                         env=env, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lazy_finalisation_matches_numbas_own_and_its_cache_links_into_later_callers(tmp_path):
    cache = str(tmp_path / "cache")
    # a cold process: the in-numba run (run_steps), its tasks compiled but never optimised alone
    first = _run("run", GLOMSIM_CACHE_DIR=cache)
    assert first["tasks_optimised"] == 0 and first["task_hits"] == 0
    # a later process whose callers are not in the cache (their entries removed): the run
    # and the step from Python are compiled again and link the tasks' cached bitcode
    gone = [p for p in Path(cache).rglob("*") if "step_all" in p.name or "run_steps" in p.name]
    assert gone
    for p in gone:
        p.unlink()
    later = _run("run,stepwise", GLOMSIM_CACHE_DIR=cache)
    assert later["task_hits"] >= 2 and later["tasks_optimised"] == 0
    # numba's own finalisation, no cache: every library optimised where it is made
    eager = _run("run,stepwise", GLOMSIM_LAZY_LLVM="0", GLOMSIM_NUMBA_CACHE="0")
    assert eager["tasks_optimised"] >= 2
    hashes = {first["got"]["run"], *later["got"].values(), *eager["got"].values()}
    assert len(hashes) == 1, (first, later, eager)
    for r in (first, later, eager):  # the user's function: numba's finalisation, and it runs
        assert not r["user_raw"] and r["user_optimised"] >= 1 and np.isclose(r["value"], 2.0)
