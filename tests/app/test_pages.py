"""Page wiring with Streamlit's AppTest: every page loads on the demo pool without exceptions,
widgets change state, downloads are offered, empty states explain the one action to take."""
from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from selection_core.frontends import jobs, workspace
from selection_core.select import stages as pipeline
from selection_core.cli import main
from selection_core.spine.store import RunStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")
DEMO_N = 600
SWEPT_K = (4, 6, 8, 12)  # conftest's prepared_workspace


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page != "clusters":
        at.switch_page(f"pages/{page}.py")
        at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_every_page_opened_first_runs_inside_the_app_frame(prepared_workspace: Path) -> None:
    """Streamlit runs pages/X.py directly when /X is a server's first request (AppTest: every
    run); the page must still get app.py's frame: real navigation, sidebar, title."""
    for page in ("data", "clean", "selection", "iterative", "influence", "report", "results"):
        at = AppTest.from_file(APP, default_timeout=120)
        at.switch_page(f"pages/{page}.py")
        at.run()
        assert_clean(at)
        assert [c.value for c in at.sidebar.caption][:1] == ["Current pool"], page
        assert len(at.title) == 1  # the page itself, once


def test_clusters_page_shows_the_first_view_while_the_rest_is_prepared(
        prepared_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RunStore(prepared_workspace / "runs" / "first-view")
    pipeline.ingest_demo(store, n=300)

    class Interrupted(Exception):
        pass

    def stop_before_the_rest(done: int, total: int, stage: str = "") -> None:
        if stage in ("umap", "sweep_rest"):
            raise Interrupted

    with pytest.raises(Interrupted):  # the preparation as far as its first view
        pipeline.prepare(store, ks=(2, 3, 4, 6, 8), progress=stop_before_the_rest)
    assert pipeline.map_kind(store) == "pca"
    assert pd.read_csv(store.path("sweep.csv"))["k"].tolist() == [2, 4, 8]  # the first pass
    running = jobs.JobStatus("prepare", "running", None, "", "", time.time())
    monkeypatch.setattr(jobs, "job_status", lambda _store, _name: running)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["run_dir"] = str(store.root)
    at.run()
    assert_clean(at)
    assert any(c.value.startswith("Quick map (PCA") for c in at.caption)
    assert any("(so far" in c.value for c in at.caption)
    assert any("Still preparing in the background" in p.proto.text for p in at.get("progress"))
    assert len(at.get("plotly_chart")) >= 3  # map, curves (first pass), cluster sizes
    at.switch_page("pages/report.py").run()  # a page that needs everything waits, with progress
    assert_clean(at)
    assert not any(b.label == "Build the report" for b in at.button)
    assert any("Step 5 of 6" in p.proto.text for p in at.get("progress"))

    monkeypatch.undo()
    pipeline.prepare(store, ks=(2, 3, 4, 6, 8))  # the rest: the full sweep and the UMAP map
    assert pipeline.map_kind(store) == "umap"
    assert pd.read_csv(store.path("sweep.csv"))["k"].tolist() == [2, 3, 4, 6, 8]
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["run_dir"] = str(store.root)
    at.run()
    assert_clean(at)
    assert any(c.value.startswith("UMAP map") for c in at.caption)
    assert not at.get("progress")


def test_clusters_page_shows_map_curves_and_reacts_to_k(prepared_workspace: Path) -> None:
    at = open_page("clusters")
    assert_clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # the map, the k curves, the cluster sizes
    slider = at.select_slider[0]
    recommended = slider.value
    assert recommended in (4, 6, 8, 12)
    assert any(f"k={recommended}:" in c.value for c in at.caption)
    new_k = 4 if recommended != 4 else 12
    slider.set_value(new_k).run()
    assert_clean(at)
    assert any(f"k={new_k}: {new_k} clusters" in c.value for c in at.caption)
    assert any(f"The {new_k} clusters" in h.value for h in at.subheader)
    for again in (recommended, new_k):  # every move counts, not every other one
        at.select_slider[0].set_value(again).run()
        assert_clean(at)
        assert any(f"k={again}: {again} clusters" in c.value for c in at.caption)
    at.segmented_control(key="colour_by").set_value("source").run()
    assert_clean(at)
    at.selectbox(key="inspect").set_value(1).run()
    assert_clean(at)
    assert any("cluster 1" in b.label for b in at.get("download_button"))


def test_selection_page_runs_compares_and_offers_downloads(prepared_workspace: Path) -> None:
    at = open_page("selection")
    assert_clean(at)
    assert any("No selection yet" in i.value for i in at.info)
    at.button[0].click().run()  # the form's submit button: kMQ, 300 rows
    assert_clean(at)
    at.selectbox[0].set_value("random")  # form widgets are sent with the submit button
    at.button[0].click().run()
    assert_clean(at)
    summary = at.dataframe[0].value
    assert summary["selection"].iloc[0].startswith("kmq · k=")
    assert summary["selection"].iloc[1].startswith("random · k=")
    assert summary["selection"].iloc[2] == "(whole pool)"
    assert (summary["rows"].iloc[:2] == 300).all()
    assert summary["noise share"].iloc[0] < summary["noise share"].iloc[1]  # kMQ < random
    downloads = at.get("download_button")
    assert len(downloads) == 4  # JSONL and CSV for each selection


def test_selection_page_opens_a_rows_rationale_and_compares_rows(prepared_workspace: Path
                                                                  ) -> None:
    """Issue 16: choosing a selected row (map click, table row or the Row box) opens its
    rationale with its prompt and response; two selections list the rows only one chose, each
    with why it was chosen and what the other's computation gave it."""
    at = open_page("selection")
    at.button[0].click().run()  # kMQ, 300 rows
    at.selectbox[0].set_value("kmeans-closest")
    at.button[0].click().run()
    assert_clean(at)
    made = next(iter(at.session_state["selections"].values()))
    kmq = next(s for s in made.values() if s.config["method"] == "kmq")
    assert at.selectbox(key="explain_selection").value == kmq.name
    at.selectbox(key="why_row").set_value(7).run()
    assert_clean(at)
    pool = pipeline.load_run_pool(workspace.demo_run())
    row = pool.iloc[kmq.rows[7]]
    texts = [m.value for m in at.markdown]
    assert f"**{row['id']}**" in texts and kmq.rationale["why"].iloc[7] in texts
    assert row["prompt"] in [t.value for t in at.text]
    assert "estimated from 1000 seeded draws" in kmq.rationale["why"].iloc[7] \
        or kmq.rationale["p_select_kind"].iloc[7] == "exact"
    only = [d.value for d in at.dataframe if any(c.startswith("why not ") for c in d.value)]
    assert len(only) == 2 and all(len(frame) > 0 for frame in only)
    kmq_only, closest_only = only
    assert kmq_only.iloc[:, 3].str.startswith("not selected: ").all()  # kmeans-closest's view
    assert closest_only.iloc[:, 3].str.startswith("not selected: ").all()  # kMQ's view
    assert closest_only.iloc[:, 2].str.contains("nearest its centroid").all()


def test_selection_without_a_scorer_model_explains_what_is_missing(prepared_workspace: Path
                                                                   ) -> None:
    at = open_page("selection")
    at.selectbox[1].set_value("reward")
    at.button[0].click().run()
    assert_clean(at)
    assert any("needs a model" in e.value for e in at.error)


def test_data_page_shows_the_pool_and_names_bad_lines(prepared_workspace: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELECTION_CORE_DATA_ROOTS", str(tmp_path))  # the path box reads there
    at = open_page("data")
    assert_clean(at)
    assert any(m.value == f"{DEMO_N:,}" for m in at.metric)
    at.text_input[0].set_value("capital").run()
    assert any("of 600 rows" in c.value for c in at.caption)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n{broken\n")
    at.radio(key="data_source").set_value("Local path or Hugging Face dataset").run()
    at.text_area[0].set_value(str(bad)).run()
    assert_clean(at)
    assert any(f"{bad}, line 2" in e.value and "malformed JSON" in e.value for e in at.error)
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"a{i}"}) + "\n"
                            for i in range(30)))
    at.text_area[0].set_value(str(good)).run()
    assert_clean(at)
    assert not at.error
    assert any(b.label == "Use this pool" for b in at.button)


def test_report_page_builds_a_downloadable_report(prepared_workspace: Path) -> None:
    at = open_page("report")
    assert_clean(at)
    next(b for b in at.button if b.label == "Build the report").click().run()
    assert_clean(at)
    assert any("Report ready" in s.value for s in at.success)
    labels = [b.label for b in at.get("download_button")]
    assert "Download the HTML report" in labels


def test_cli_report_is_the_report_page_without_a_browser(prepared_workspace: Path,
                                                        tmp_path: Path, capsys) -> None:
    """`report` writes the Report page's HTML (same sections, figures, tables, selections)."""
    store = workspace.demo_run()
    _, recommended, _ = pipeline.load_sweep(store)
    for method in ("kmq", "random"):  # selections saved in the run, as on a GPU server
        assert main(["select", "--run", str(store.root), "--method", method, "--k",
                     str(recommended), "--budget", "120", "--out",
                     str(tmp_path / f"{method}.jsonl")]) == 0
    at = open_page("report")
    names = at.multiselect[0].value
    assert names == [f"kmq · k={recommended} · 120 rows · τ=1 · seed 0",
                     f"random · k={recommended} · 120 rows · seed 0"]
    next(b for b in at.button if b.label == "Build the report").click().run()
    assert_clean(at)
    page = at.session_state["report"]
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()  # an output's folder must exist: the guard creates none (issue 29)
    assert main(["report", "--run", str(store.root), "--out", str(out), "--png"]) == 0
    html = out.read_text(encoding="utf-8")

    def comparable(text: str) -> str:  # plotly's random element ids and the build time differ
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)
        return re.sub(r"Generated [^<]* by selection_core", "Generated", text)

    assert comparable(html) == comparable(page["html"])
    assert all(name.replace("τ", "&tau;") in html or name in html for name in names)
    assert "<script src=" not in html and "plotly" in html  # self-contained
    with zipfile.ZipFile(tmp_path / "out" / "report-figures.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{name}.png" for name in page["figures"])
        assert all(archive.read(name)[:8] == b"\x89PNG\r\n\x1a\n" for name in archive.namelist())
    assert "overlap" in page["figures"] and "composition_by_cluster" in page["figures"]
    assert html.count("How the subset was chosen — ") == 2 * 2  # table of contents + section
    assert "Budget per cluster: " in html and "5 example rows and why each was chosen" in html

    one = tmp_path / "one.html"  # a selection given as `select --out`'s JSONL
    assert main(["report", "--run", str(store.root), "--selections",
                 str(tmp_path / "kmq.jsonl"), "--out", str(one)]) == 0
    text = one.read_text(encoding="utf-8")
    assert "<td>kmq</td>" in text and "random · k=" not in text
    assert "Overlap (Jaccard)" in html and "Overlap (Jaccard)" not in text  # one selection
    capsys.readouterr()
    assert main(["report", "--run", str(store.root), "--selections", "nope", "--out",
                 str(tmp_path / "x.html")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: 'nope' is neither a selection saved in") and "kmq-" in error
    assert not (tmp_path / "x.html").exists()


def test_empty_state_offers_the_one_action(prepared_workspace: Path, tmp_path: Path) -> None:
    data = tmp_path / "pool.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p{i}", "response": "r"}) + "\n"
                            for i in range(10)))
    store = workspace.run_for_inputs([str(data)])
    pipeline.ingest(store, [str(data)])
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(store.root)
    at.run()
    assert_clean(at)
    assert any("has not been embedded" in i.value for i in at.info)
    assert any(b.label.startswith("Prepare this pool") for b in at.button)
    # the sidebar's run switcher takes the app back to the demo run
    demo = workspace.demo_run().root.name
    at.sidebar.selectbox(key="switch_run").set_value(demo).run()
    assert_clean(at)
    assert at.session_state["run_dir"].endswith(demo)
    assert any(f"{DEMO_N} prompts" in c.value for c in at.caption)  # the demo's map is shown


@pytest.mark.shared_data
def test_every_page_works_on_a_real_pool(prepared_workspace: Path, shared_data: Path) -> None:
    inputs = [str(shared_data / "dolly" / "dolly_filtered_3k.jsonl.gz"),
              str(shared_data / "code_alpaca" / "code_alpaca_2k.jsonl.gz"),
              str(shared_data / "gsm8k" / "train.jsonl.gz")]
    store = workspace.run_for_inputs(inputs)
    pipeline.ingest(store, inputs, limit=200)
    pipeline.prepare(store, ks=(3, 6, 9))
    for page in ("clusters", "selection", "data", "report"):
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state["run_dir"] = str(store.root)
        at.run()
        if page != "clusters":
            at.switch_page(f"pages/{page}.py")
            at.run()
        assert_clean(at)
        if page == "clusters":
            assert len(at.get("plotly_chart")) >= 3
            assert any("600 prompts" in c.value for c in at.caption)
        if page == "data":
            assert any("alpaca" in str(df.value.to_dict()) for df in at.dataframe)


def test_results_page_empty_state_then_table(prepared_workspace: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from selection_core.experiment.plan import ExperimentRunner, load_experiment_config

    with monkeypatch.context() as patch:  # a checkout without the bundled experiment
        patch.setattr(workspace, "BUNDLED_EXPERIMENTS", tmp_path / "no-bundle")
        at = open_page("results")
        assert_clean(at)
        assert any("No experiment results yet" in i.value for i in at.info)
        assert any(b.label == "Run the quick demo experiment" for b in at.button)
    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny-app"\nmodel = "tiny-random-llama"\n[pool]\ndemo_n = 300\n'
                      'k = 4\n[selection]\nmethods = ["random", "kmq"]\nbudgets = [40]\n'
                      '[train]\nmax_steps = 1\nbatch_size = 8\nmax_length = 96\n'
                      '[eval]\nbenchmarks = ["demo"]\neval_limit = 6\nmax_new_tokens = 6\n')
    ExperimentRunner(load_experiment_config(config),
                     workspace.experiments_root() / "tiny-app", log=lambda _: None).run()
    at = open_page("results")
    assert_clean(at)
    html = "".join(h.proto.body for h in at.get("html"))
    assert "<table" in html and "kmq" in html and "macro avg" in html
    assert " ± " in html and "items (n)" in html and "held-out items only" in html
    figures = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("vs random, with 95 % intervals" in spec for spec in figures)  # forest plot
    assert any('"error_y"' in spec and '"type":"bar"' in spec.replace(" ", "")
               for spec in figures)  # two benchmarks: bars with their intervals
    at.radio[0].set_value("all").run()
    assert_clean(at)
    assert "all test items" in "".join(h.proto.body for h in at.get("html"))
    labels = [b.label for b in at.get("download_button")]
    assert labels[:4] == ["CSV", "Markdown", "LaTeX", "HTML report"]
    assert any(df.value.shape[0] == 6 for df in at.dataframe)  # a predictions table
    assert any(h.value == "Demo, per skill" for h in at.subheader)  # the skills' own table
    assert html.count("<table") >= 2


def test_results_page_opens_on_the_bundled_experiment(prepared_workspace: Path) -> None:
    """A fresh workspace: the Results page shows the experiment shipped in assets/ (the
    README's "What selection buys on a CPU"), labelled as bundled, per skill too."""
    bundled = workspace.BUNDLED_EXPERIMENTS / "demo-smollm2-cpu"
    if not (bundled / "experiment.json").exists():
        pytest.skip("this checkout has no bundled experiment")
    label = "demo-smollm2-cpu (bundled demo)"
    at = open_page("results")
    assert_clean(at)
    assert label in at.multiselect[0].options
    if not list(workspace.experiments_root().glob("*/experiment.json")):
        assert at.multiselect[0].value == [label]  # a fresh workspace opens on it
        assert any("shipped with the project" in i.value for i in at.info)
    else:  # another test's experiment comes first: the workspace's own runs lead
        assert at.multiselect[0].value != [label]
        at.multiselect[0].set_value([label]).run()
        assert_clean(at)
    html = "".join(h.proto.body for h in at.get("html"))
    assert "smollm2" in " ".join(h.value for h in at.subheader).lower()
    assert "kmq" in html and "iterative-kmq" in html and "Δ vs random" in html
    assert any(h.value == "Demo, per skill" for h in at.subheader)


class EchoModel:
    """A deterministic stand-in for the LM: answers with the prompt's first words."""

    name = "echo"

    def train(self, prompts, responses, out_dir, previous, seed) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)

    def generate(self, prompts):
        return [" ".join(p.split()[:3]) for p in prompts]

    def truncate(self, texts):
        return [t[:40] for t in texts]

    def response_log_likelihood(self, prompts, responses):
        import numpy as np

        return -np.array([len(r) % 7 + 1.0 for r in responses])


def test_iterative_page_empty_state_then_history(prepared_workspace: Path) -> None:
    from selection_core.iterative.loop import RefinementLoop, list_iterative_runs
    from selection_core.iterative.rounds import MAX_NEW_TOKENS, IterativeConfig

    store = workspace.demo_run()
    if not list_iterative_runs(store):
        at = open_page("iterative")
        assert_clean(at)
        assert any("No iterative run on this pool yet" in i.value for i in at.info)
        assert any("selection_core iterate --run" in c.value for c in at.code)
    config = IterativeConfig(k=6, budget=60, rounds=3, scorer="perplexity", eval_per_round=18,
                             model="echo")
    at = open_page("iterative")
    shown = {n.label: n.value for n in at.number_input}
    assert shown["Generations scored per round"] == IterativeConfig.eval_per_round
    assert shown["Max new tokens"] == MAX_NEW_TOKENS and shown["Rounds"] == IterativeConfig.rounds
    RefinementLoop(config, EchoModel()).fit(store)
    at = open_page("iterative")
    assert_clean(at)
    assert any(m.value == "3 / 3" for m in at.metric)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles[:2] == ["Per-cluster score across rounds",
                          "mean S (gold − generation) by cluster and round"]
    assert {"Cluster weights", "Weight entropy", "Items added per round"} <= set(titles)
    assert any(m.label == "Weight entropy now" for m in at.metric)
    assert any(t.startswith("Clusters with mean quality below 0.3") for t in titles)
    traces = len(json.loads(at.get("plotly_chart")[0].proto.spec)["data"])
    at.multiselect(key="trend_clusters").set_value([0, 1]).run()
    assert_clean(at)
    assert len(json.loads(at.get("plotly_chart")[0].proto.spec)["data"]) == 2 != traces
    at.selectbox(key="gen_cluster").set_value(at.selectbox(key="gen_cluster").options[0]).run()
    assert_clean(at)
    generations = at.dataframe[-1].value
    assert {"prompt", "gold", "generated", "gap"} <= set(generations.columns)
    labels = [b.label for b in at.get("download_button")]
    assert "rounds.csv" in labels and "Final selection (60 rows, JSONL)" in labels


def _help_default(capsys: pytest.CaptureFixture[str], command: str, flag: str) -> str:
    """The default `python -m selection_core COMMAND --help` shows for FLAG."""
    assert main([*command.split(), "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split("options:")[1].split())
    found = re.search(" " + re.escape(flag) + r" [^-].*?\(default: ([^)]*)\)", text)
    assert found, (command, flag)
    return found.group(1)


def test_help_toml_and_widget_defaults_are_the_same_values(
        prepared_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13: each default is declared once, on the config field; `--help`, an experiment
    TOML that leaves the key out, and the pages' widgets all show that value."""
    from selection_core.spine.config import MAX_NEW_TOKENS, IterativeConfig, SelectionConfig, \
        field_default
    from selection_core.experiment.plan import load_experiment_config

    toml = tmp_path / "x.toml"
    toml.write_text('name = "x"\nmodel = "m"\n')
    experiment = load_experiment_config(toml)
    selection = open_page("selection")
    iterative = open_page("iterative")
    assert_clean(selection)
    assert_clean(iterative)
    numbers = {**{f"selection:{n.label}": n.value for n in selection.number_input},
               **{f"iterative:{n.label}": n.value for n in iterative.number_input}}
    boxes = {**{f"selection:{b.label}": b.value for b in selection.selectbox},
             **{f"iterative:{b.label}": b.value for b in iterative.selectbox}}
    cases = {  # declared default: (--help, TOML without the key, page widget)
        field_default(SelectionConfig, "sample_tau"): [
            float(_help_default(capsys, "select", "--tau")), experiment.sample_tau,
            numbers["selection:Temperature τ (kMQ)"]],
        field_default(SelectionConfig, "scorer"): [
            _help_default(capsys, "select", "--scorer"), experiment.scorer,
            boxes["selection:Quality scorer"]],
        field_default(IterativeConfig, "weight_tau"): [
            float(_help_default(capsys, "iterate", "--weight-tau")),
            experiment.iterative_weight_tau, numbers["iterative:Weight temperature τ"]],
        field_default(IterativeConfig, "rounds"): [
            int(_help_default(capsys, "iterate", "--rounds")), experiment.iterative_rounds,
            numbers["iterative:Rounds"]],
        field_default(IterativeConfig, "eval_per_round"): [
            int(_help_default(capsys, "iterate", "--eval-per-round")),
            experiment.iterative_eval_per_round,
            numbers["iterative:Generations scored per round"]],
        field_default(IterativeConfig, "scorer"): [
            _help_default(capsys, "iterate", "--scorer"), experiment.iterative_scorer,
            boxes["iterative:Scorer"]],
    }
    for declared, shown in cases.items():
        assert shown == [declared] * 3, (declared, shown)
    assert int(_help_default(capsys, "select", "--seed")) == numbers["selection:Seed"] == \
        field_default(SelectionConfig, "sample_seed")
    assert numbers["iterative:Max new tokens"] == experiment.iterative_max_new_tokens == \
        MAX_NEW_TOKENS
    # the influence features command's flags come from FeatureSettings' declarations
    from selection_core.influence.cli import FEATURE_FLAGS
    from selection_core.influence.pipeline import FeatureSettings

    for name in FEATURE_FLAGS:
        declared = field_default(FeatureSettings, name)
        if declared is not False:  # a switch shows no default
            shown = _help_default(capsys, "influence features", "--" + name.replace("_", "-"))
            assert type(declared)(shown) == declared, name


# last in this file: a clean result makes the demo run's later selections leave rows out
def test_clean_page_counts_recounts_at_once_and_shows_the_overlap(prepared_workspace: Path
                                                                   ) -> None:
    from selection_core.select import clean

    at = open_page("clean")
    assert_clean(at)
    assert at.button and "Find duplicates" in at.button[0].label  # no result yet: the action
    store = workspace.demo_run()
    result = clean.clean(store, clean.CleanConfig(benchmarks=("demo",)))
    at = open_page("clean")
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows flagged"] == f"{len(result.flags):,}"
    for kind in clean.KINDS:
        assert metrics[kind] == f"{int((result.flags['kind'] == kind).sum()):,}"
    # a looser ε recounts from the stored similarities, as the stage would have flagged
    at.select_slider[0].set_value(0.2).run()
    assert_clean(at)
    looser = clean.flag_table(result.scores(), result.items(),
                              clean.CleanConfig(benchmarks=("demo",), semantic_eps=0.2))
    assert {m.label: m.value for m in at.metric}["Rows flagged"] == f"{len(looser):,}"
    assert len(looser) > len(result.flags)
    # a contaminated row beside its benchmark item, the shared 8-grams marked on both sides
    scores = result.scores()
    by_ngrams = set(scores.loc[scores["ngram"] >= result.config.ngram_overlap, "id"])
    contaminated = result.flags[(result.flags["kind"] == "contaminated")
                                & result.flags["id"].isin(by_ngrams)]
    at.multiselect[0].set_value(["contaminated"]).run()
    at.selectbox[0].set_value(contaminated["id"].iloc[0]).run()
    assert_clean(at)
    shown = [element.proto.body for element in at.get("html")]
    assert len(shown) == 2 and all("<mark>" in body for body in shown)
    assert any(b.label.startswith("Download the removed ids") for b in at.get("download_button"))
    # the Clusters page: flagged rows as a map colour, counts per cluster in the table
    at = open_page("clusters")
    assert_clean(at)
    table = next(frame.value for frame in at.dataframe if "duplicates" in frame.value.columns)
    flags = result.flags
    assert table["duplicates"].sum() == int((flags["kind"] != "contaminated").sum())
    assert table["contaminated"].sum() == int((flags["kind"] == "contaminated").sum())
    at.segmented_control(key="colour_by").set_value("flagged").run()
    assert_clean(at)
    drawn = at.get("plotly_chart")[0].proto.spec
    assert re.search(r'"name":\s*"not flagged"', drawn)  # flagged rows, the rest greyed
