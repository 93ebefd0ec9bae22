"""The sandbox runs hostile code: it must report outcomes faithfully, keep every effect inside
bubblewrap, and never let a program forge its own pass. These run in CI under bubblewrap."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from selection_core.spine import sandbox
from selection_core.spine.sandbox import SandboxResult, SandboxUnavailable, run_many, \
    run_python

pytestmark = pytest.mark.usefixtures("bubblewrap")


# --------------------------------------------------------------------------- faithful outcomes
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
    assert "sandbox_main" not in result.stderr  # the harness's own frames are not shown


def test_syntax_error_is_failed() -> None:
    result = run_python("def broken(:\n    pass")
    assert result.status == "failed"
    assert "SyntaxError" in result.stderr


def test_main_guard_does_not_run_as_in_human_eval() -> None:
    program = ("def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n"
               "    x = input()\n\nassert add(1, 2) == 3\n")
    assert run_python(program).passed


def test_parts_run_in_one_namespace_and_compile_apart() -> None:
    tests = "assert double(2) == 4\n"
    assert run_python({"solution.py": "def double(x):\n    return 2 * x\n",
                       "tests.py": tests}).passed
    # A solution that opens a string cannot swallow its tests and so skip them.
    swallow = run_python({"solution.py": "def double(x):\n    return 0\nx = '''",
                          "tests.py": tests + "'''\n"})
    assert swallow.status == "failed" and "SyntaxError" in swallow.stderr


def test_infinite_loop_times_out_promptly() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - started < 3.0
    assert "1 s limit" in result.stderr


def test_long_output_is_truncated_to_head_and_tail() -> None:
    result = run_python("print('start')\nprint('x' * 100_000)\nprint('end')")
    assert result.passed
    assert len(result.stdout) < 5_000
    assert result.stdout.startswith("start") and result.stdout.rstrip().endswith("end")
    assert "bytes omitted" in result.stdout


def test_environment_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "s3cret")
    result = run_python("import os\nprint(sorted(os.environ))\nprint(os.getcwd(), os.getuid())")
    assert result.passed
    assert "SANDBOX_TEST_SECRET" not in result.stdout and "s3cret" not in result.stdout
    assert result.stdout.splitlines()[1] == "/tmp 65534"


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


# --------------------------------------------------------------------------- forged passes
FORGERIES = {
    "marker from __file__ then os._exit(0)":
        "import os, re\nsource = open(__file__).read()\n"
        "print(re.findall(r'all-tests-ran-\\w+', source)[0])\nos._exit(0)\nassert False\n",
    "exit(0)": "exit(0)\nassert False\n",
    "raise SystemExit(0)": "raise SystemExit(0)\nassert False\n",
    "junk on every descriptor": "import os\nfor fd in range(64):\n    try:\n"
                                "        os.write(fd, b'S' + b'0' * 32)\n    except OSError:\n"
                                "        pass\nos._exit(0)\nassert False\n",
    "read every descriptor, echo it back": (
        "import os\nseen = b''\nfor fd in range(3, 64):\n    try:\n"
        "        os.set_blocking(fd, False)\n        seen += os.read(fd, 4096)\n"
        "    except (OSError, TypeError):\n        pass\nfor fd in range(3, 64):\n    try:\n"
        "        os.write(fd, b'S' + seen[-32:])\n    except OSError:\n        pass\n"
        "os._exit(0)\nassert False\n"),
    "raise the finish event itself": (
        "import os, sys\nsys.audit('selection_core.spine.sandbox.arm')\n"
        "sys.audit('selection_core.spine.sandbox.finish')\nos._exit(0)\nassert False\n"),
    "walk the frames for the token": (
        "import os, re, sys\nfound = set()\nframe = sys._getframe()\nwhile frame:\n"
        "    for scope in (frame.f_locals, frame.f_globals):\n"
        "        for value in list(scope.values()):\n"
        "            found.update(re.findall(r'\\b[0-9a-f]{32}\\b', repr(value)))\n"
        "    frame = frame.f_back\nfor token in found:\n    for fd in range(3, 64):\n"
        "        try:\n            os.write(fd, b'S' + token.encode())\n"
        "        except OSError:\n            pass\nos._exit(0)\nassert False\n"),
    "scan the heap": "import gc\ngc.get_objects()\n",
    "jump over asserts with a tracer": "import sys\nsys.settrace(lambda *a: None)\n",
    "raw memory through ctypes": "import ctypes\n",
}


@pytest.mark.parametrize("name", FORGERIES)
def test_a_program_cannot_forge_its_pass(name: str) -> None:
    result = run_python(FORGERIES[name])
    assert result.status == "failed", (name, result)


# --------------------------------------------------------------------------- contained effects
def test_reimported_modules_give_no_way_out(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    attacks = [
        f"import sys\nsys.modules.pop('posix')\nimport posix\n"
        f"assert posix.system('touch {target}') == 0",
        f"import sys\nsys.modules.pop('posix')\nimport posix\nposix.fork()\n"
        f"open('{target}', 'w').close()",
        "import ctypes\nctypes.CDLL(None).system(b'touch /tmp/x')",
        "import sys\nsys.modules.pop('_socket', None)\nimport _socket\n"
        "_socket.socket().connect(('1.1.1.1', 53))",
    ]
    for result in run_many(attacks):
        assert result.status == "failed"
    assert not target.exists()


def test_writes_outside_the_private_tmpfs_fail(tmp_path: Path) -> None:
    host_tmp = Path("/tmp") / f"sandbox-escape-{os.getpid()}"
    targets = [tmp_path / "pwned", Path.cwd() / "pwned-by-sandbox-test",
               Path(sandbox._interpreter()).parent / "pwned", Path("/usr/pwned")]
    program = "import os\nwritten = []\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('x')\n    written.append({str(t)!r})\n"
        f"except OSError:\n    pass\n" for t in targets)
    # /tmp inside is the program's private tmpfs: a target under /tmp (pytest's tmp_path; a
    # checkout under /tmp) may be written there, in memory, and must not appear on the host.
    private = [str(t) for t in targets if Path("/tmp") in t.parents]
    program += (f"open({str(host_tmp)!r}, 'w').write('x')\n"
                f"assert set(written) <= set({private!r}), written\n")
    result = run_python(program)
    assert result.passed, result.stderr  # nothing outside the private /tmp was writable
    assert not host_tmp.exists()
    assert not any(t.exists() for t in targets)


def test_host_files_cannot_be_read_out() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    result = run_python(f"for path in ('/etc/passwd', '/etc/shadow', {str(readme)!r}):\n"
                        "    try:\n        print(open(path).read())\n"
                        "    except OSError as exc:\n        print(type(exc).__name__)\n")
    assert result.stdout.split() == ["FileNotFoundError"] * 3


def test_no_connection_reaches_a_local_server() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.3)
        port = server.getsockname()[1]
        result = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 1)")
        assert result.status == "failed"
        assert "Error" in result.stderr
        with pytest.raises(TimeoutError):
            server.accept()


def test_nothing_outlives_the_program() -> None:
    tag = f"{os.getpid()}{time.monotonic_ns() % 10_000}"
    program = ("import os, subprocess\n"
               f"try:\n    subprocess.Popen(['setsid', 'sleep', '{tag}'])\nexcept OSError:\n"
               "    pass\n"
               f"try:\n    if os.fork() == 0:\n        os.setsid()\n"
               f"        os.execv('/bin/sleep', ['sleep', '{tag}'])\nexcept OSError:\n    pass\n")
    run_python(program)
    time.sleep(0.2)
    survivors = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                 and tag in (p / "cmdline").read_bytes().decode(errors="replace")]
    assert not survivors


def test_the_evaluator_cannot_be_killed_and_others_are_unaffected() -> None:
    me = os.getpid()
    programs = ["assert 2 + 2 == 4",
                f"import os, signal\nfor pid in ({me}, os.getppid(), 1):\n    try:\n"
                "        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
                "os.kill(-1, signal.SIGKILL)\n",
                "import os\nwhile True:\n    os.fork()\n",
                "data = [bytearray(10 ** 7) for _ in range(1000)]\n",
                "assert 3 * 3 == 9"]
    started = time.monotonic()
    results = run_many(programs, workers=5)
    assert [r.status for r in results] == ["passed", "failed", "failed", "failed", "passed"]
    assert "MemoryError" in results[3].stderr
    assert time.monotonic() - started < 20


def test_filling_the_disk_stays_inside() -> None:
    result = run_python("with open('/tmp/big', 'wb') as f:\n"
                        "    for _ in range(200):\n        f.write(b'x' * 1024 * 1024)\n")
    assert result.status == "failed"


# --------------------------------------------------------------------------- no sandbox, no run
def test_without_bubblewrap_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable) as raised:
        run_many(["print('hi')"])
    message = str(raised.value)
    assert "\n" not in message
    assert "apt-get install bubblewrap" in message and "--unsafe-no-sandbox" in message
    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    assert run_python("print('hi')").passed  # the explicit opt-out, for a trusted container


def test_a_bubblewrap_that_cannot_start_is_named(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: str(fake))
    with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
        run_python("print('hi')")


def test_evaluate_refuses_in_one_line_without_a_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import json

    from selection_core.cli import main

    data = tmp_path / "mbpp.jsonl"
    data.write_text(json.dumps({"task_id": 1, "text": "Add.", "code": "def add(a, b): return a+b",
                                "test_list": ["assert add(1, 2) == 3"]}) + "\n")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps({"task_id": 1, "completion": "def add(a, b):\n"
                                                                   "    return a + b\n"}) + "\n")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    args = ["evaluate", "--benchmark", "mbpp", "--data", str(data),
            "--predictions", str(predictions)]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: refusing to run model-written code") and "\n" not in error
    assert main([*args, "--unsafe-no-sandbox"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 100.0
