"""Issue 13: pages reach artefacts through the core's accessors (`pipeline.has_pool`,
`RunStore.stages`, `influence.pipeline.matrix_paths` …), never by file name, so the run
directory's layout can change in one place. Download names and help text may mention files."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTEFACT = re.compile(r"^[\w{}./-]*[\w}]\.(json|jsonl|csv|npy|parquet|txt|log|safetensors)$")


def _literal(node: ast.AST) -> str | None:
    """The text of a string constant or an f-string (placeholders as {})."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}"
                       for part in node.values)
    return None


def artefact_names(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string in `source` that is a bare artefact file name, except what
    a download button shows or names its file."""
    tree = ast.parse(source)
    downloads = {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "attr", None) == "download_button"
                 for arg in [*node.args, *(k.value for k in node.keywords)]}
    found = []
    for node in ast.walk(tree):
        text = _literal(node)
        if text is not None and id(node) not in downloads and ARTEFACT.match(text):
            found.append((node.lineno, text))
    for node in ast.walk(tree):  # an f-string's parts are constants too: report it once
        if isinstance(node, ast.JoinedStr):
            found = [item for item in found if item[0] != node.lineno or
                     item[1] == _literal(node)]
    return sorted(set(found))


def test_the_check_finds_file_names() -> None:
    source = ('p = store.path("sweep.csv")\nq = run / f"round-{n}.json"\n'
              'st.download_button("rounds.csv", b"", file_name="cluster-3.csv")\n'
              'st.info("Upload A.npy + val_tasks.txt")\n')
    assert artefact_names(source) == [(1, "sweep.csv"), (2, "round-{}.json")]


def test_pages_name_no_artefact_files() -> None:
    offenders = {str(path.relative_to(REPO)): names
                 for path in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]
                 if (names := artefact_names(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def argv_jobs(source: str) -> list[int]:
    """Lines where a job is started with anything but a chain of `jobs.link(stage, config)`
    (or a function that builds one): argv lists of strings, string variables."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "start_job":
            chain = node.args[2] if len(node.args) > 2 else None
            links = chain.elts if isinstance(chain, ast.List) else None
            built = isinstance(chain, ast.Call)  # e.g. tiny_chain()
            if not built and (links is None or not all(
                    isinstance(link, ast.Call) and getattr(link.func, "attr", None) == "link"
                    for link in links)):
                found.append(node.lineno)
    return found


def test_pages_start_jobs_with_configs_not_argv() -> None:
    """Issue 13: a page builds configs; a job is a chain of (stage, config), never argv."""
    assert argv_jobs('jobs.start_job(s, "x", ["prepare", "--run", d])\n'
                     'jobs.start_job(s, "x", args)\n') == [1, 2]
    assert argv_jobs('jobs.start_job(s, "x", [jobs.link("quality", config)])\n'
                     'jobs.start_job(s, "x", tiny_chain())\n') == []
    offenders = {path.name: argv_jobs(path.read_text(encoding="utf-8"))
                 for path in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]
                 if path.name != "_access.py"}  # its guard forwards the chain a page built
    assert {name: lines for name, lines in offenders.items() if lines} == {}
    assert sum("start_job(" in path.read_text() for path in (REPO / "pages").glob("*.py")) >= 5
