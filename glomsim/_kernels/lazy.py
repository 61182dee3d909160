"""Optimise and generate machine code once per kernel, not once per caller.

numba makes a code library per compiled function. When a library is finalised it runs
LLVM's module passes over it and over every library linked into it, and generates its
machine code, whether or not anything will run that machine code: a kernel that only
other kernels call (a task, a parallel loop's body and the wrapper around it) is
optimised and generated again inside each caller. A cold start of the small config
spent 11-12 s of CPU in module passes and 7 s generating code this way (34 libraries,
the task code five times over: its own, the loop body's, the body's two wrappers' and
the run's).

While one of glomsim's kernels compiles (:func:`lazily`), a library finalised is only
linked: it is optimised and its machine code generated when something asks for the
address of one of its functions (the entry of a kernel called from Python), and never
when it is only linked into another library, which optimises all it holds at once.
Such a library is cached as LLVM bitcode instead of machine code (numba's own format
for that), and loaded back unoptimised in the same way. An environment's address is
set when its library's code exists. Nothing changes for libraries compiled outside
:func:`lazily`: a user's own numba functions are finalised as numba does.

``GLOMSIM_LAZY_LLVM=0`` (read by :mod:`.jit`) turns this off (numba's own finalisation), for
instance to read a task's optimised assembly with numba's ``inspect_asm``: a library
never run on its own keeps its unoptimised code.
"""

from __future__ import annotations

import contextlib

__all__ = ["lazily"]

_depth = 0  # > 0 while a glomsim kernel compiles (under numba's compiler lock)
_pending_envs: dict = {}  # environment symbol -> environment, set once its code exists
_installed: bool | None = False  # None: this numba cannot be patched


@contextlib.contextmanager
def lazily():
    """Finalise the libraries made inside this block lazily (call under numba's
    compiler lock, as glomsim's compile wrapper does)."""
    global _depth
    if not _install():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


#: What the patches below use of numba's code libraries (numba 0.59-0.68); a numba
#: without any of them is left to finalise as it does.
_NEEDS = ("finalize", "_optimize_final_module", "_finalize_final_module", "_raise_if_finalized",
          "_ensure_finalized", "_get_module_for_linking", "serialize_using_object_code",
          "_unserialize")  # fmt: skip
_numba: dict = {}  # numba's own methods, which the patches call


def _install() -> bool | None:
    """Patch numba's code libraries (once); None when this numba lacks what they use."""
    global _installed
    if _installed is not False:
        return _installed
    from numba.core import codegen as cg

    lib_cls = getattr(cg, "CPUCodeLibrary", None)
    jit_cls = getattr(cg, "JITCodeLibrary", None)
    codegen_cls = getattr(cg, "JITCPUCodegen", None)
    if (jit_cls is None or codegen_cls is None or not hasattr(codegen_cls, "set_env")
            or not all(hasattr(lib_cls, name) for name in _NEEDS)):  # fmt: skip
        _installed = None
        return None
    _numba.update(jit_cls=jit_cls, finalize=lib_cls.finalize,
                  get_pointer=jit_cls.get_pointer_to_function,
                  serialize=lib_cls.serialize_using_object_code,
                  unserialize=lib_cls._unserialize.__func__,
                  set_env=codegen_cls.set_env)  # fmt: skip
    lib_cls.finalize = _finalize
    jit_cls.get_pointer_to_function = _get_pointer
    lib_cls.serialize_using_object_code = _serialize
    lib_cls._unserialize = classmethod(_unserialize)
    codegen_cls.set_env = _set_env
    _installed = True
    return True


def _finalize(self):
    """numba's ``finalize`` up to its module passes: link what the library calls, and
    leave it raw (not optimised, not in the execution engine) until its code is needed."""
    if _depth == 0 or not isinstance(self, _numba["jit_cls"]):
        return _numba["finalize"](self)
    from numba.core.compiler_lock import require_global_compiler_lock

    require_global_compiler_lock()
    self._codegen._check_llvm_bugs()
    self._raise_if_finalized()
    seen = set()
    for library in self._linking_libraries:
        if library not in seen:
            self._reload_init.update(library._reload_init)
            seen.add(library)
            self._final_module.link_in(library._get_module_for_linking(), preserve=True)
    self._final_module.verify()
    self._glomsim_raw = True
    self._finalized = True


def _materialise(self):
    """What numba's ``finalize`` does last: optimise, add to the engine (which emits the
    machine code), then set the environments waiting for this code."""
    self._glomsim_raw = False
    self._optimize_final_module()
    self._final_module.verify()
    self._finalize_final_module()
    for gv in self._final_module.global_variables:
        env = _pending_envs.pop(gv.name, None)
        if env is not None and not gv.is_declaration:
            _numba["set_env"](self._codegen, gv.name, env)


def _defines(module, name) -> bool:
    try:
        return not module.get_function(name).is_declaration
    except NameError:
        return False


def _get_pointer(self, name):
    self._ensure_finalized()  # numba finalises a library when first asked for an address
    if getattr(self, "_glomsim_raw", False):
        # a parallel loop's body is only ever called through its linked wrapper
        if self.name.startswith("__numba_parfor_gufunc") or not _defines(self._final_module, name):
            return 0
        _materialise(self)
    return _numba["get_pointer"](self, name)


def _serialize(self):
    if getattr(self, "_glomsim_raw", False):  # never run on its own: its bitcode
        return (self.name, "bitcode", self._final_module.as_bitcode())
    return _numba["serialize"](self)


def _unserialize(cls, codegen, state):
    name, kind, data = state
    if _depth == 0 or kind != "bitcode":
        return _numba["unserialize"](cls, codegen, state)
    import llvmlite.binding as ll

    self = codegen.create_library(name)
    self._final_module = ll.parse_bitcode(data)
    self._glomsim_raw = True
    self._finalized = True
    return self


def _set_env(self, env_name, env):
    if not self._engine.is_symbol_defined(env_name):
        _pending_envs[env_name] = env  # its library's code does not exist yet
        return
    _numba["set_env"](self, env_name, env)
