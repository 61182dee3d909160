"""A script that starts a sweep on the embedded cluster without the ``__main__`` guard.

Each worker process of the embedded ``LocalCluster`` imports the main script again (as
``__mp_main__``); unguarded, each worker would start the sweep itself. Both sides say
what to do on one line, and the store stays as it was, ready for the guarded script.
"""

import subprocess
import sys
import textwrap

import pytest

from glomsim.sweep import open_sweep, run
from glomsim.sweep.execute import _refuse_while_a_worker_imports_main

SPEC = {"base": {"levels": 1, "dim": 2, "grid": [1, 5], "steps": 4},
        "axes": {"top_down_delay": [1, 2]}, "scene": False}  # fmt: skip
GUARD = "under `if __name__ == '__main__':`"


def _as_worker_import(code, path, **names):
    """Runs ``code`` as the top level of the main script a spawned process imports."""
    g = {"__name__": "__mp_main__", "__file__": path, **names}
    exec(compile(textwrap.dedent(code), path, "exec"), g)
    return g


def test_run_from_the_top_level_of_a_worker_import_is_refused_before_any_work(tmp_path):
    store = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match=rf"imported {tmp_path}/script.py: .*{GUARD}"):
        _as_worker_import("run(SPEC, store, client='sync', progress=False)",
                          str(tmp_path / "script.py"), run=run, SPEC=SPEC, store=store)  # fmt: skip
    assert not store.exists() and not (tmp_path / "s.zarr.lock").exists()


def test_a_function_of_the_script_that_a_worker_calls_later_may_run_a_sweep(tmp_path):
    g = _as_worker_import("def later():\n    refuse()\n", str(tmp_path / "script.py"),
                          refuse=_refuse_while_a_worker_imports_main)  # fmt: skip
    g["later"]()  # not at the top level of the import: nothing raised
    _refuse_while_a_worker_imports_main()  # nor from a plain __main__


@pytest.mark.slow
def test_an_unguarded_script_fails_on_both_sides_and_the_guarded_one_then_completes(tmp_path):
    store = tmp_path / "s.zarr"
    body = f"from glomsim.sweep import run\nspec = {SPEC!r}\n"
    call = f"run(spec, {str(store)!r}, workers=1, progress=False)\n"
    unguarded = tmp_path / "unguarded.py"
    unguarded.write_text(body + call)
    out = subprocess.run([sys.executable, str(unguarded)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)  # fmt: skip
    assert out.returncode != 0
    lines = out.stderr.splitlines()
    # the worker's import refused, and the driver says why its worker did not start
    assert any(ln.startswith("RuntimeError: glomsim.sweep.run was called while a worker")
               and GUARD in ln for ln in lines)  # fmt: skip
    assert any(ln.startswith("RuntimeError: the embedded Dask cluster's 1 worker")
               and GUARD in ln for ln in lines)  # fmt: skip
    assert not any("StoreLocked" in ln for ln in lines)  # no worker got as far as the store
    assert (open_sweep(store).status.values == 0).all()  # prepared, every run pending
    guarded = tmp_path / "guarded.py"
    guarded.write_text(body + "if __name__ == '__main__':\n    " + call)
    subprocess.run([sys.executable, str(guarded)], check=True, capture_output=True, timeout=300,
                   cwd=tmp_path)  # fmt: skip
    assert open_sweep(store).attrs["sweep_done"] == 2  # the lock was released: it resumed
