"""The sandbox runs untrusted code: it must report outcomes faithfully and contain accidents."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from selection_core.evaluate.sandbox import SandboxResult, run_many, run_python


def test_passing_program_passes_with_its_output() -> None:
    result = run_python("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok')")
    assert result.status == "passed" and result.passed
    assert result.stdout == "ok\n"
    assert result.seconds > 0


def test_failing_assert_is_failed_with_the_traceback() -> None:
    result = run_python("assert 1 + 1 == 3, 'bad maths'")
    assert result.status == "failed" and not result.passed
    assert "AssertionError: bad maths" in result.stderr
    assert 'File "program.py", line 1' in result.stderr


def test_syntax_error_is_failed() -> None:
    result = run_python("def broken(:\n    pass")
    assert result.status == "failed"
    assert "SyntaxError" in result.stderr


def test_infinite_loop_times_out_promptly() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - started < 2.5
    assert "killed after" in result.stderr


@pytest.mark.parametrize("attack", [
    "import os\nos.system('touch {target}')",
    "import subprocess\nsubprocess.run(['touch', '{target}'])",
    "import os\nos.popen('touch {target}').read()",
    "import os\nif os.fork() == 0:\n    open('{target}', 'w').close()",
    "import os\nos.execv('/usr/bin/touch', ['touch', '{target}'])",
    "import posix\nposix.system('touch {target}')",
    "import ctypes\nctypes.CDLL(None).system(b'touch {target}')",
])
def test_process_creation_is_blocked(tmp_path: Path, attack: str) -> None:
    target = tmp_path / "pwned"
    result = run_python(attack.format(target=target))
    assert not result.passed
    assert not target.exists()


def test_shell_command_with_a_relative_path_creates_nothing() -> None:
    result = run_python('import os\nos.system("touch pwned-by-sandbox-test")')
    assert result.status == "failed"
    assert "os.system is disabled in the sandbox" in result.stderr
    assert not (Path.cwd() / "pwned-by-sandbox-test").exists()


@pytest.mark.parametrize("attack", [
    "import os\nos.remove('{target}')",
    "import os\nos.unlink('{target}')",
    "import pathlib\npathlib.Path('{target}').unlink()",
    "import shutil\nshutil.rmtree('{folder}')",
    "import os\nos.rename('{target}', '{target}.moved')",
])
def test_file_deletion_is_blocked(tmp_path: Path, attack: str) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("precious")
    result = run_python(attack.format(target=target, folder=tmp_path))
    assert not result.passed
    assert target.read_text() == "precious"


def test_network_connections_are_blocked() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.3)
        port = server.getsockname()[1]
        result = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}))")
        assert not result.passed
        assert "disabled in the sandbox" in result.stderr
        with pytest.raises(TimeoutError):
            server.accept()
    for attack in ("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)",
                   "import _socket\n_socket.socket()"):
        assert not run_python(attack).passed


def test_memory_bomb_fails() -> None:
    result = run_python("data = bytearray(8 * 1024 ** 3)\nprint(len(data))", memory_mb=256)
    assert result.status == "failed"
    assert "MemoryError" in result.stderr


def test_environment_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "s3cret")
    result = run_python("import os\nprint(sorted(os.environ))\nprint(os.getcwd())")
    assert result.passed
    assert "SANDBOX_TEST_SECRET" not in result.stdout and "s3cret" not in result.stdout
    workdir = Path(result.stdout.splitlines()[1])
    assert not workdir.exists()  # the temporary working directory is removed afterwards


def test_long_output_is_truncated_to_head_and_tail() -> None:
    result = run_python("print('start')\nprint('x' * 100_000)\nprint('end')")
    assert result.passed
    assert len(result.stdout) < 5_000
    assert result.stdout.startswith("start") and result.stdout.rstrip().endswith("end")
    assert "bytes omitted" in result.stdout


def test_interpreter_that_cannot_start_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    result = run_python("print('hi')")
    assert result.status == "error" and not result.passed
    assert "could not start" in result.stderr


def test_run_many_preserves_order() -> None:
    programs = [f"import time\ntime.sleep({0.05 * (4 - i)})\nprint({i})" for i in range(5)]
    programs.append("assert False")
    results = run_many(programs, workers=3)
    assert [r.stdout.strip() for r in results[:5]] == [str(i) for i in range(5)]
    assert [r.status for r in results] == ["passed"] * 5 + ["failed"]
    assert all(isinstance(r, SandboxResult) for r in results)
    assert run_many([]) == []


@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"timeout_s": float("inf")},
                                    {"memory_mb": 10}])
def test_invalid_limits_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        run_python("pass", **kwargs)
