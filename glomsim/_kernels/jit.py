"""The one place that sets numba's options: nopython, nogil, caching, and the named
fastmath flag sets that kernels choose from (fastmath is off unless a kernel names one).

Where numba's cache of glomsim's kernels lives (:data:`CACHE_DIR`; ``glomsim info`` shows
it), first match wins:

1. ``GLOMSIM_NUMBA_CACHE=0`` (or false/no/off): no cache.
2. ``NUMBA_CACHE_DIR`` (or ``numba.config.CACHE_DIR`` set before glomsim's kernels are
   first imported): numba's own setting, honoured.
3. ``GLOMSIM_CACHE_DIR``: glomsim's kernels only.
4. ``glomsim/_kernels/__pycache__`` beside the source, when it is writable.
5. A per-user folder for read-only installs: ``$XDG_CACHE_HOME/glomsim/numba``, else
   ``~/.cache/glomsim/numba``. ``glomsim warmup`` fills it once per user and machine.

A kernel's cached entries are compiled again when any file of ``glomsim/_kernels``
changes (:func:`sources_stamp`), not only its own: kernels inline each other across files.

For 3 and 5, ``numba.config.CACHE_DIR`` is set only while each kernel is decorated (numba's
locator reads it then, once) and restored after, so the user's own numba functions keep
numba's defaults. A folder that cannot be written (the probe fails) means no cache rather
than an error. While a kernel compiles, code libraries are optimised and emitted only where
their code runs (:mod:`.lazy`; ``GLOMSIM_LAZY_LLVM=0``: numba's own way). OpenMP's waiting
policy is not set here: :mod:`glomsim.runtime` sets it just before numba's threading layer
first starts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import types
from pathlib import Path

import numba

from .lazy import lazily

__all__ = ["njit", "prange", "variant", "CACHE", "CACHE_DIR", "user_cache_dir", "sources_stamp",
           "EXACT", "FMA", "REASSOC", "VECTOR_BITS"]  # fmt: skip

_CACHE_ENV = "GLOMSIM_NUMBA_CACHE"


def _switched_off(name: str) -> bool:
    """Whether the environment variable ``name`` turns its feature off (0, false, no, off)."""
    return os.environ.get(name, "1").strip().lower() in ("0", "false", "no", "off")


#: Whether kernels compile with lazy finalisation (:mod:`.lazy`).
LAZY = not _switched_off("GLOMSIM_LAZY_LLVM")


def _vector_bits() -> int:
    """The SIMD width of the nets' products (:mod:`.gemm`): ``GLOMSIM_VECTOR_BITS`` (256
    or 512) when set, else 512 where the CPU numba compiles for has AVX-512F (numba's
    ``NUMBA_CPU_FEATURES``, else the host's), else 256."""
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    from .._validate import vector_bits_setting

    chosen = vector_bits_setting()
    if chosen is not None:
        return chosen
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    return 512 if "+avx512f" in str(features).split(",") else 256


#: Bits of one SIMD vector of the nets' packed products (:func:`_vector_bits`). Weights
#: are packed in panels of this width in the process that runs them, and cached kernels
#: carry it in their stamp (:func:`_stamped`).
VECTOR_BITS = _vector_bits()

#: No fastmath: every operation rounds as written (the default).
EXACT = frozenset()
#: Fused multiply-adds only: polynomials round once per term instead of twice, and run
#: faster (the float32 erf's cost 0.26 instead of 0.38 ns an element).
FMA = frozenset({"contract"})
#: Multiply-adds and reassociation: sums over features and neighbours vectorise.
REASSOC = frozenset({"reassoc", "contract"})


def _writable(folder: Path) -> bool:
    """Whether numba can write its index files into ``folder`` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
        return True
    except OSError:
        return False


def user_cache_dir() -> Path:
    """The per-user cache folder for read-only installs (``GLOMSIM_CACHE_DIR`` when set).

    Examples
    --------
    >>> import os
    >>> "GLOMSIM_CACHE_DIR" in os.environ or user_cache_dir().parts[-2:] == ("glomsim", "numba")
    True
    """
    if own := os.environ.get("GLOMSIM_CACHE_DIR"):
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "glomsim" / "numba"


def _locate() -> tuple[bool, Path | None, str | None]:
    """(caching on, the folder, the ``numba.config.CACHE_DIR`` to set while decorating)."""
    if _switched_off(_CACHE_ENV):
        return False, None, None
    if numba_own := numba.config.CACHE_DIR:  # NUMBA_CACHE_DIR, read by numba at import
        folder = Path(numba_own).expanduser().resolve()
        return _writable(folder), folder, None
    if "GLOMSIM_CACHE_DIR" not in os.environ:
        beside = Path(__file__).resolve().parent / "__pycache__"
        if _writable(beside):
            return True, beside, None
    folder = user_cache_dir().resolve()
    return _writable(folder), folder, str(folder)


CACHE, CACHE_DIR, _SET_CACHE_DIR = _locate()


def sources_stamp(folder) -> tuple:
    """(latest modification time, total size, count) of the ``.py`` files in ``folder``.

    Examples
    --------
    >>> stamp = sources_stamp(Path(__file__).parent)
    >>> len(stamp) == 3 and stamp[2] > 1
    True
    """
    stats = [f.stat() for f in sorted(Path(folder).glob("*.py"))]
    return (max((st.st_mtime for st in stats), default=0.0), sum(st.st_size for st in stats),
            len(stats))  # fmt: skip


#: What every cached kernel's entry also depends on: the kernels inline and call each other
#: across these files, and numba checks only the stamp of a function's own file, so an
#: edit to ``nets.py`` or ``gemm.py`` alone would load a step compiled from the old code.
_KERNELS_STAMP = sources_stamp(Path(__file__).resolve().parent)


def _stamped(dispatcher):
    """Make the cache entries of ``dispatcher`` depend on :data:`_KERNELS_STAMP` and
    :data:`VECTOR_BITS` as well as on its own file (numba's index stores a stamp and
    compiles again when it differs). Left as numba made it when its cache has no such
    stamp (no cache, or another numba)."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, _KERNELS_STAMP, VECTOR_BITS)
    return dispatcher


@contextlib.contextmanager
def _numba_cache_dir():
    """``numba.config.CACHE_DIR`` pointed at glomsim's folder while a kernel is
    decorated (when it is not numba's own choice), restored after."""
    if not (CACHE and _SET_CACHE_DIR):
        yield
        return
    before = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = _SET_CACHE_DIR
    try:
        yield
    finally:
        numba.config.CACHE_DIR = before


#: LLVM's optimisation level for glomsim's kernels (numba's default, ``NUMBA_OPT``, is 3).
#: At 1 a cold start's compiling took 22-25 s of CPU against 27-32 s at 3 (the small
#: benchmark config, alternating processes), and steps ran as fast: median ms a step on
#: one thread, levels 3 against 1, 32.8-33.8 and 32.7-33.6 (32x32, dim 128, radius 2),
#: 0.46-0.49 and 0.47-0.48 (16x16, dim 16), 0.099-0.102 and 0.098-0.099 (8x8 global,
#: dim 16), 0.99-1.02 and 0.98-1.00 (8x8, dim 64): the kernels are written as the loops
#: they should run, the products are BLAS's or explicit vector IR (:mod:`.gemm`: 95-97
#: GFLOP/s a core at level 1), and level 1 still inlines and vectorises.
#: Level 0 was 10-300x slower. Only while one of glomsim's kernels compiles (a user's
#: own numba functions keep numba's level); a ``NUMBA_OPT`` in the environment wins.
OPT = 1


def _at_opt_level(dispatcher):
    """Make ``dispatcher`` compile at :data:`OPT`: numba reads ``config.OPT`` whenever it
    builds a pass manager, so the level is set around the dispatcher's ``compile`` (nested
    compiles of the kernels it calls included) and restored after. numba's code generator,
    which keeps the level it was made with for the machine code, is made first. The
    libraries made meanwhile are finalised lazily (:func:`.lazy.lazily`)."""
    own_level = not os.environ.get("NUMBA_OPT")  # the user's explicit choice wins
    compile_ = dispatcher.compile

    def compile(sig):
        if sig in dispatcher.overloads:  # compiled already: numba returns at once
            return compile_(sig)
        from numba.core import config
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.registry import cpu_target

        cpu_target.target_context  # noqa: B018 - numba makes its code generator on first use
        # under numba's own (reentrant) compiler lock: no other thread compiles meanwhile
        with global_compiler_lock, lazily() if LAZY else contextlib.nullcontext():
            before = config.OPT
            if own_level:
                config.OPT = type(before)(OPT)
            try:
                return compile_(sig)
            finally:
                config.OPT = before

    dispatcher.compile = compile
    return dispatcher


def _decorate(decorator, fn):
    with _numba_cache_dir():
        return _stamped(_at_opt_level(decorator(fn)))


def njit(*args, parallel=False, fastmath: frozenset = EXACT, internal=False, **kwargs):
    """``numba.njit`` with this project's defaults (nogil, cache where writable);
    ``fastmath`` is one of the named sets above. No kernel gets a C-callable wrapper
    (nothing takes their addresses), and an ``internal`` kernel, one only other kernels
    call, no Python wrapper either: numba compiles both for every kernel otherwise, and
    without them a cold start's machine code was 7% smaller (2.16 against 2.33 MB of
    cache for the small benchmark config)."""
    if fastmath not in (EXACT, FMA, REASSOC):
        raise ValueError(f"fastmath={fastmath!r}: use one of jit's named sets")
    opts = dict(nogil=True, cache=CACHE, parallel=parallel, error_model="numpy",
                no_cfunc_wrapper=True, no_cpython_wrapper=bool(internal))  # fmt: skip
    opts.update(kwargs, fastmath=set(fastmath))  # numba takes a set, not a frozenset
    if args and callable(args[0]):
        return _decorate(numba.njit(**opts), args[0])
    decorator = numba.njit(*args, **opts)
    return lambda fn: _decorate(decorator, fn)


prange = numba.prange


def variant(kernel, suffix: str, **names):
    """A variant of the kernel ``kernel`` (a dispatcher made by :func:`njit`): the same
    code, compiled with some of its module's globals replaced by ``names`` (a flag such
    as ``FULL = False``, or the variants of the kernels it calls), and named
    ``<name><suffix>`` so that its entries in numba's cache are its own (numba keys a
    cache file by the function's name and line and its entries by the code and the
    closure, never by globals). A flag that is a global constant prunes the branches it
    rules out before typing, so what they call is never compiled for the variant."""
    fn = kernel.py_func
    scope = dict(fn.__globals__, **names)
    new = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__qualname__ = fn.__qualname__ + suffix
    new.__doc__ = fn.__doc__
    opts = dict(kernel.targetoptions)
    parallel = opts.pop("parallel", False)
    fastmath = opts.pop("fastmath", set())
    internal = opts.pop("no_cpython_wrapper", False)
    for key in ("nopython", "nogil", "cache", "error_model", "no_cfunc_wrapper"):
        opts.pop(key, None)
    named = next((s for s in (EXACT, FMA, REASSOC) if set(s) == set(fastmath or ())), EXACT)
    return njit(parallel=parallel, fastmath=named, internal=internal, **opts)(new)
