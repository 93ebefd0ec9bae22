"""The Influence page with Streamlit's AppTest, on a synthetic run (200 pool rows, A of 200 × 14,
7 tasks × 2 instances): charts render and follow the controls, exports are offered, a run
without A explains the CLI and chains the in-app jobs, a bad upload is named, never raised."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from selection_core.frontends import jobs
from selection_core.select import stages as pipeline
from selection_core.spine import runner
from selection_core.spine.store import RunStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")
N, TASKS = 200, [f"task{t}" for t in range(7) for _ in range(2)]


def _pool_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"prompt {i}", "response": f"response {i}"})
                            + "\n" for i in range(n)))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A workspace with one run that has A and val_tasks.txt, and one that has only a pool."""
    root = tmp_path_factory.mktemp("influence_workspace")
    patch = pytest.MonkeyPatch()
    patch.setenv("SELECTION_CORE_WORKSPACE", str(root))
    with_matrix = RunStore(root / "runs" / "synthetic-influence")
    pipeline.ingest(with_matrix, [f"synthetic={_pool_file(root / 'pool.jsonl', N)}"])
    np.save(with_matrix.path("attribution.npy"),
            np.random.default_rng(0).normal(size=(N, len(TASKS))).astype(np.float32))
    with_matrix.path("val_tasks.txt").write_text("\n".join(TASKS) + "\n")
    without = RunStore(root / "runs" / "no-matrix")
    pipeline.ingest(without, [str(_pool_file(root / "small.jsonl", 30))])
    yield {"with": with_matrix.root, "without": without.root}
    patch.undo()


def open_influence(run_dir: Path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(run_dir)
    at.run()
    at.switch_page("pages/influence.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def figure(at: AppTest, title: str) -> dict:
    """The spec of the one plotly chart whose title starts with `title`."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [s for s in specs if s["layout"].get("title", {}).get("text", "").startswith(title)]
    assert len(found) == 1, [s["layout"].get("title") for s in specs]
    return found[0]


def source_radio(at: AppTest):
    return at.radio(key="influence_source")


def test_charts_follow_methods_budget_and_views(runs: dict[str, Path]) -> None:
    at = open_influence(runs["with"])
    assert source_radio(at).value == "This run"
    assert any(m.value == f"{N:,}" for m in at.metric)
    assert len(at.get("plotly_chart")) == 5  # THI, AID heatmap, AID per instance, overlap,
    # tasks served over BIDS's selection order
    thi = figure(at, "Task with the highest influence (task level, Â)")
    assert [t["name"] for t in thi["data"]] == ["bids", "task-max", "random"]
    composition = at.dataframe[0].value
    assert composition[["bids", "task-max", "random"]].sum().tolist() == [20, 20, 20]  # 10%
    assert composition[f"whole pool ({N})"].sum() == N

    at.slider[0].set_value(25.0).run()  # % of the pool
    assert_clean(at)
    assert any("**50** of 200 rows" in c.value for c in at.caption)
    assert at.dataframe[0].value["bids"].sum() == 50

    at.multiselect[0].set_value(["bids", "instance-max-norm"]).run()
    assert_clean(at)
    assert len(figure(at, "Task with the highest influence")["data"]) == 2
    at.multiselect[0].set_value(["bids"]).run()
    assert len(figure(at, "Task with the highest influence")["data"]) == 1
    assert len(at.get("plotly_chart")) == 4  # no overlap for a single method

    at.segmented_control[0].set_value("instance").run()
    at.segmented_control[1].set_value("raw A").run()
    assert_clean(at)
    figure(at, "Task with the highest influence (instance level, raw A)")

    at.radio[1].set_value("rows").run()  # budget as a count
    at.slider[0].set_value(7).run()
    assert at.dataframe[0].value["bids"].sum() == 7


def test_a_picks_rationale_is_what_the_greedy_recorded(runs: dict[str, Path]) -> None:
    """Issue 16: the BIDS rationale shown for a pick is the greedy's own record (instance,
    task, utility), with the row's prompt; the tasks-served chart has a line per task."""
    from selection_core.select.bids import explain_on_matrix

    at = open_influence(runs["with"])
    assert at.selectbox(key="influence_explain").value == "bids"
    served = figure(at, "Tasks served over bids's selection order")
    assert len(served["data"]) == len(set(TASKS))  # one line per task
    at.selectbox(key="influence_why_row").set_value(4).run()
    assert_clean(at)
    A = np.load(runs["with"] / "attribution.npy")
    expected = explain_on_matrix(A, np.array(TASKS), "bids", 20).iloc[4]
    texts = [m.value for m in at.markdown]
    assert expected["why"] in texts
    row = int(expected["row"])
    assert f"prompt {row}" in [t.value for t in at.text]
    assert any(f"val_index: {expected['val_index']}" in c.value for c in at.caption)


def test_exports_offer_indices_rows_and_figures(runs: dict[str, Path]) -> None:
    at = open_influence(runs["with"])
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Row indices (.txt)", "Selected rows (JSONL)", "Figures (HTML)"]
    at.selectbox(key="influence_export").set_value("random").run()
    assert_clean(at)


def test_empty_state_explains_the_cli_and_starts_one_chain_job(runs: dict[str, Path],
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """The page starts warmup → features → matrix as ONE job of configs (no argv), shows its
    step, and a retry starts the same chain (its finished stages are reused by the runner)."""
    statuses: dict[str, jobs.JobStatus] = {}
    started: list[jobs.Chain] = []

    def start_job(store: RunStore, name: str, chain: jobs.Chain) -> jobs.JobStatus:
        for stage, config in chain:  # every link is a registered stage's serialised config
            runner.get_stage(stage).load_config(config)
        started.append(chain)
        statuses[name] = jobs.JobStatus(name, "running", None, "", "", time.time(), 0,
                                        len(chain), tuple(chain))
        return statuses[name]

    def move(name: str, state: str, step: int, message: str = "") -> None:
        old = statuses[name]
        statuses[name] = jobs.JobStatus(name, state, None if state == "running" else 1, message,
                                        "", old.started, step, old.steps, old.chain)

    monkeypatch.setattr(jobs, "start_job", start_job)
    monkeypatch.setattr(jobs, "job_status", lambda store, name: statuses.get(
        name, jobs.JobStatus(name, "absent", None, "", "", None)))
    at = open_influence(runs["without"])
    assert source_radio(at).value != "This run"  # another run's matrix is shown first
    source_radio(at).set_value("This run").run()
    assert_clean(at)
    assert any("influence warmup" in c.value and str(runs["without"]) in c.value
               and "influence matrix" in c.value for c in at.code)
    next(b for b in at.button if b.label.startswith("Compute a small matrix")).click().run()
    assert_clean(at)
    [chain] = started
    assert [stage for stage, _ in chain] == ["influence-warmup", "influence-features",
                                             "influence-matrix"]
    warmup = runner.get_stage(chain[0][0]).load_config(chain[0][1])
    assert (warmup.model, warmup.lora.r, warmup.lora.epochs) == ("tiny-random-llama", 8, 2)
    assert runner.get_stage(chain[1][0]).load_config(chain[1][1]).dim == 512
    assert len(at.get("progress")) == 1
    move("influence", "running", 1)
    at = open_influence(runs["without"])  # a reload while the job runs its second stage
    assert source_radio(at).value == "This run"
    assert any("Step 2 of 3" in p.proto.text for p in at.get("progress"))
    assert len(started) == 1  # polling never starts a stage
    move("influence", "failed", 1, "no validation data")
    at.run()
    assert any("gradient features" in e.value and "failed: no validation data" in e.value
               for e in at.error)
    next(b for b in at.button if b.label == "Try again").click().run()
    assert len(started) == 2 and started[1] == chain


def test_a_non_finite_upload_is_named_not_raised(runs: dict[str, Path]) -> None:
    at = open_influence(runs["with"])
    source_radio(at).set_value("Upload A.npy + val_tasks.txt").run()
    assert any("Upload both files" in i.value for i in at.info)
    bad = np.zeros((N, len(TASKS)), dtype=np.float32)
    bad[3, 5] = np.nan
    buffer = io.BytesIO()
    np.save(buffer, bad)
    at.file_uploader[0].set_value(("A.npy", buffer.getvalue(), "application/octet-stream"))
    at.file_uploader[1].set_value(("val_tasks.txt", "\n".join(TASKS).encode(), "text/plain"))
    at.run()
    assert_clean(at)
    message = at.error[0].value
    assert "A.npy" in message and "non-finite value nan at (row 3, column 5)" in message
    assert "uploads" not in message  # the user's file name, not where it was stored
    assert not at.get("plotly_chart")

    good = io.BytesIO()
    np.save(good, np.random.default_rng(1).normal(size=(N, len(TASKS))))
    at.file_uploader[0].set_value(("A.npy", good.getvalue(), "application/octet-stream"))
    at.run()
    assert_clean(at)
    assert not at.error and len(at.get("plotly_chart")) == 5
    assert "Selected rows (JSONL)" in [b.label for b in at.get("download_button")]  # same pool
