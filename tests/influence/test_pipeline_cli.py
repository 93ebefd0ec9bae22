"""`python -m selection_core influence warmup|features|matrix|select` end to end on a tiny run:
40 real Alpaca rows, the tiny random llama, 2 warmup epochs, d=64, 2 validation instances per
task; then the CLI's file contract, resuming features, and clear errors on bad matrix files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selection_core.cli import main
from selection_core.spine import runner
from selection_core.influence.pipeline import FEATURES as FEATURES_STAGE, checkpoint_weights, checkpoints, \
    current_features, validation_path, warmup_folder, warmup_info
from selection_core.select.bids import select_on_matrix
from selection_core.influence.validation import VALIDATION_TASKS
from selection_core.spine.errors import MissingStageError
from selection_core.spine.store import RunStore

pytestmark = [pytest.mark.shared_data, pytest.mark.usefixtures("one_torch_thread")]

REPO = Path(__file__).resolve().parents[2]
N, PER_TASK, DIM = 40, 2, 64
M = len(VALIDATION_TASKS) * PER_TASK
WARMUP = ["influence", "warmup", "--model", "tiny-random-llama", "--fraction", "0.5",
          "--epochs", "2", "--lora-r", "4", "--batch-size", "4", "--effective-batch", "4",
          "--max-length", "64", "--device", "cpu"]
FEATURES = ["influence", "features", "--dim", str(DIM), "--val-per-task", str(PER_TASK),
            "--max-length", "64", "--val-max-new-tokens", "8", "--device", "cpu"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "selection_core", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def influence_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path,
                  one_torch_thread: None) -> Path:
    """warmup → features → matrix through the CLI's entry point (in process: fast)."""
    import gzip
    import itertools

    root = tmp_path_factory.mktemp("influence")
    pool = root / "pool.jsonl"
    with gzip.open(shared_data / "alpaca" / "alpaca_random_9k.jsonl.gz", "rt") as source:
        pool.write_text("".join(itertools.islice(source, N)))
    run = root / "run"
    assert main([*WARMUP, "--run", str(run), "--data", str(pool), "--lr", "1e-3"]) == 0
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert main(["influence", "matrix", "--run", str(run)]) == 0
    return run


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each `gradient_features` call: the features stage makes one per chunk."""
    from selection_core.influence import gradients

    rows: list[int] = []
    real = gradients.gradient_features

    def counting(model, tokenizer, prompts, *args, **kwargs) -> np.ndarray:
        rows.append(len(prompts))
        return real(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(gradients, "gradient_features", counting)
    return rows


def test_stages_write_features_and_the_matrix_contract(influence_run: Path) -> None:
    store = RunStore(influence_run, create=False)
    assert warmup_info(store)["rows"] == N // 2
    found = checkpoints(store)
    assert [c.epoch for c in found] == [1, 2] and all(c.mean_lr > 0 for c in found)
    folder = current_features(store)
    val = pd.read_json(validation_path(folder), lines=True)
    assert val["task"].tolist() == [t for t in VALIDATION_TASKS for _ in range(PER_TASK)]
    assert val["generated"].tolist() == [t == "ifeval" for t in val["task"]]
    train, valid = [], []
    for c in found:
        train.append(np.load(folder / f"epoch{c.epoch}" / "train.npy"))
        valid.append(np.load(folder / f"epoch{c.epoch}" / "val.npy"))
        for features, rows in ((train[-1], N), (valid[-1], M)):
            assert features.shape == (rows, DIM) and np.isfinite(features).all()
            assert np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    assert not np.allclose(train[0], train[1])  # two checkpoints, two sets of features
    progress = store.progress("influence")  # what the app's progress bar reads
    assert progress["done"] == progress["total"] and progress["message"].startswith("epoch")
    for split, rows in (("train", N), ("val", M)):
        rds = np.load(folder / "rds" / f"{split}.npy")
        assert rds.shape[0] == rows and np.allclose(np.linalg.norm(rds, axis=1), 1, atol=1e-5)

    A = np.load(influence_run / "attribution.npy")
    assert A.shape == (N, M) and A.dtype == np.float32 and np.isfinite(A).all()
    weights = checkpoint_weights(found)
    np.testing.assert_allclose(A, sum(w * t @ v.T for w, t, v in zip(weights, train, valid)),
                               atol=1e-5)
    assert np.abs(A).max() <= 1 + 1e-5  # a convex combination of cosines
    tasks = (influence_run / "val_tasks.txt").read_text().splitlines()
    assert tasks == val["task"].tolist() and len(tasks) == M


def test_select_through_python_m(influence_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bids.txt"
    result = run_cli("influence", "select", "--matrix", str(influence_run / "attribution.npy"),
                     "--val-tasks", str(influence_run / "val_tasks.txt"), "--method", "bids",
                     "--budget", "10%", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = [int(line) for line in out.read_text().splitlines()]
    assert len(rows) == N // 10 == len(set(rows)) and all(0 <= r < N for r in rows)
    A = np.load(influence_run / "attribution.npy")
    tasks = np.array((influence_run / "val_tasks.txt").read_text().splitlines())
    assert rows == select_on_matrix(A, tasks, "bids", N // 10).tolist()  # selection order


def test_features_resume_after_the_last_finished_chunk(influence_run: Path, tmp_path: Path,
                                                       computed: list[int]) -> None:
    """A crash after 16 rows of epoch 2's training features: the rerun computes only the other
    24 rows, gets the features of the uninterrupted run, and a further rerun computes nothing."""
    run = tmp_path / "run"
    shutil.copytree(influence_run, run)
    folder = current_features(RunStore(run, create=False))
    target = folder / "epoch2" / "train.npy"
    finished = np.load(target)
    partial = np.load(target, mmap_mode="r+")
    partial[16:] = 0  # as left by a crash: later rows not written
    partial.flush()
    del partial
    marker = target.with_name("train.npy.progress.json")
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "rows_done": 16}))
    (folder / runner.RECORD).unlink()  # the key is not finished: its record is written last
    assert runner.latest(RunStore(run, create=False), FEATURES_STAGE) is None
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert computed == [N - 16]
    np.testing.assert_allclose(np.load(target), finished, atol=1e-5)
    assert current_features(RunStore(run, create=False)) == folder
    computed.clear()
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert computed == []


def test_a_new_warmup_never_reuses_old_checkpoints_or_features(
        influence_run: Path, tmp_path: Path, computed: list[int]) -> None:
    """The old rules' failure cases are new keys: a warmup with other settings in a run that has
    one ("compare and refuse" before) gets its own folder and trains from scratch; features of
    the new warmup ("compare and delete" before) get their own folder, recomputed in full, while
    the old warmup's features stay untouched and are never returned for the new warmup."""
    run = tmp_path / "run"
    shutil.copytree(influence_run, run)
    store = RunStore(run, create=False)
    old_warmup, folder = warmup_folder(store), current_features(store)
    before = np.load(folder / "epoch1" / "train.npy")
    assert main([*WARMUP, "--run", str(run), "--lr", "5e-4"]) == 0
    assert warmup_folder(store) != old_warmup
    assert [c.path.parent for c in checkpoints(store)] == [warmup_folder(store)] * 2
    with pytest.raises(MissingStageError):  # the old warmup's features are not the new one's
        current_features(store)
    assert main([*FEATURES, "--run", str(run)]) == 0
    assert computed == [N, M, N, M]  # every chunk again, none resumed
    new = current_features(store)
    assert new != folder and not np.allclose(np.load(new / "epoch1" / "train.npy"), before)
    np.testing.assert_array_equal(np.load(folder / "epoch1" / "train.npy"), before)


def test_bad_matrix_files_give_one_line_errors(influence_run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    A = np.load(influence_run / "attribution.npy")
    tasks = influence_run / "val_tasks.txt"
    bad = tmp_path / "nonfinite.npy"
    A_bad = A.copy()
    A_bad[1, 2] = np.nan
    np.save(bad, A_bad)
    result = run_cli("influence", "select", "--matrix", str(bad), "--val-tasks", str(tasks),
                     "--method", "bids", "--budget", "4", "--out", str(tmp_path / "x.txt"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}: non-finite value nan at (row 1, column 2)")
    assert "Traceback" not in result.stderr and not (tmp_path / "x.txt").exists()

    short = tmp_path / "tasks13.txt"
    short.write_text("\n".join(tasks.read_text().splitlines()[:-1]) + "\n")
    matrix = str(influence_run / "attribution.npy")
    cases = [(["--matrix", matrix, "--val-tasks", str(short), "--method", "bids"],
              f"{short}: {M - 1} task names, but the matrix {matrix} has {M} columns"),
             (["--matrix", matrix, "--val-tasks", str(tasks), "--method", "nope"],
              "unknown method 'nope'")]
    for args, message in cases:
        code = main(["influence", "select", *args, "--budget", "4",
                     "--out", str(tmp_path / "x.txt")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err

    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert main(["influence", "matrix", "--run", str(empty)]) == 2
    assert "run `python -m selection_core influence features" in capsys.readouterr().err


# --------------------------------------------------------------------------- the LESS way
LONG = 1024  # the tiny model's context: most rows fit whole, so LESS's tokenisation applies


@pytest.fixture(scope="module")
def long_features(influence_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's features again with room for whole sequences, every other setting default."""
    run = tmp_path_factory.mktemp("less-way") / "run"
    shutil.copytree(influence_run, run)
    assert main(["influence", "features", "--run", str(run), "--dim", str(DIM),
                 "--val-per-task", str(PER_TASK), "--max-length", str(LONG),
                 "--val-max-new-tokens", "8", "--device", "cpu"]) == 0
    return run


def _less_tokens(tokenizer, prompt: str, response: str, eos: bool) -> tuple[list[int], int]:
    """LESS's tokenisation: `tokenizer.encode(query + completion)` (+ the EOS token for training
    data, none for validation); the query's own token count is what the labels mask. The query
    is the prompt as this project formats it (the template is not what LESS fixes); BOS once."""
    from selection_core.lm.formatting import format_prompt

    query = format_prompt(tokenizer, prompt)
    special = not query.startswith(tokenizer.bos_token)
    full = tokenizer.encode(query + response, add_special_tokens=special)
    return full + ([tokenizer.eos_token_id] if eos else []), \
        len(tokenizer.encode(query, add_special_tokens=special))


def test_features_equal_the_less_way_computed_one_example_at_a_time(
        long_features: Path) -> None:
    """Batch size 1, `model(**batch).loss`, `.grad`, LESS's Adam formula m'/√(v' + ε) for
    training rows, plain gradients for validation text without EOS, then the run's projection
    and L2 normalisation; RDS: the final checkpoint's last hidden state at the last token.
    (The last checkpoint; the other's features come from the same code.)"""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    from selection_core.influence.gradients import RademacherProjector
    from selection_core.lm.loading import load_causal_lm

    store = RunStore(long_features, create=False)
    folder = current_features(store)
    pool = pd.read_parquet(long_features / "pool.parquet")
    val = pd.read_json(validation_path(folder), lines=True, dtype=False)
    checkpoint = checkpoints(store)[-1]
    base, tokenizer = load_causal_lm("tiny-random-llama", device="cpu", dtype="float32",
                                     cache=False)
    model = PeftModel.from_pretrained(base, str(checkpoint.path), is_trainable=True).eval()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    state = load_file(str(checkpoint.path / "optimizer.safetensors"))
    avg = torch.cat([state[f"{n}.exp_avg"].flatten() for n in names])
    avg_sq = torch.cat([state[f"{n}.exp_avg_sq"].flatten() for n in names])
    projector = RademacherProjector(len(avg), DIM, seed=0)
    for split, frame, eos in (("train", pool, True), ("val", val, False)):
        stored = np.load(folder / f"epoch{checkpoint.epoch}" / f"{split}.npy")
        rds = np.load(folder / "rds" / f"{split}.npy")
        compared = []
        for row, (prompt, response) in enumerate(zip(frame["prompt"], frame["response"])):
            ids, query = _less_tokens(tokenizer, prompt, response, eos)
            if len(ids) > LONG:
                continue  # LESS cuts the end, this project the prompt's start: not compared
            input_ids = torch.tensor([ids])
            labels = input_ids.clone()
            labels[0, :query] = -100
            model.zero_grad(set_to_none=True)
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                        labels=labels, output_hidden_states=True)
            out.loss.backward()
            g = torch.cat([p.grad.view(-1) for _, p in model.named_parameters()
                           if p.grad is not None])
            if split == "train":
                m = 0.9 * avg + 0.1 * g
                v = 0.999 * avg_sq + 0.001 * g ** 2
                g = m / torch.sqrt(v + 1e-08)
            feature = projector(g[None])[0]
            np.testing.assert_allclose(stored[row], (feature / feature.norm()).numpy(),
                                       atol=2e-4, err_msg=f"{split} row {row}")
            rep = out.hidden_states[-1][0, -1].detach()
            np.testing.assert_allclose(rds[row], (rep / rep.norm()).numpy(), atol=2e-4,
                                       err_msg=f"RDS {split} row {row}")
            compared.append(row)
        # enough rows to mean something, including one-token MMLU answers (where an EOS would
        # have been half the response)
        assert len(compared) >= (30 if split == "train" else 10), (split, len(compared))
        if split == "val":
            assert "mmlu" in set(frame["task"].iloc[compared])


def test_warmup_prints_the_preset_and_every_value_it_uses(
        influence_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--preset bids` on the tiny run (one step): BIDS A.2's settings, printed and used."""
    run = tmp_path / "run"
    shutil.copytree(influence_run, run, ignore=shutil.ignore_patterns("stages"))
    assert main(["influence", "warmup", "--run", str(run), "--model", "tiny-random-llama",
                 "--preset", "bids", "--max-steps", "1", "--max-length", "64",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for value in ("preset bids", "BIDS A.2", "fraction 1 of the pool", "4 epochs",
                  "learning rate 2e-05", "cosine decay after a 0.03 warm-up", "weight decay 0",
                  "batch 1 × 128 accumulated = 128", "max length 64", "r 128 alpha 512",
                  "dropout 0.1", "q_proj,k_proj,v_proj,o_proj", "seed 0"):
        assert value in printed, value
    store = RunStore(run, create=False)
    state = json.loads((checkpoints(store)[0].path / "state.json").read_text())
    assert state["config"]["lr_scheduler"] == "cosine"
    assert (state["config"]["batch_size"], state["config"]["grad_accumulation"]) == (1, 128)
    assert warmup_info(store)["rows"] == N


def test_a_chain_job_of_configs_computes_what_the_cli_computes(influence_run: Path,
                                                               tmp_path: Path) -> None:
    """warmup → features → matrix as ONE background job of serialised configs (what the
    Influence page starts): the same keys as the CLI's flags, the same matrix at the root."""
    from selection_core.frontends import jobs
    from selection_core.influence.pipeline import MATRIX_STAGE, WARMUP, FeatureSettings, \
        MatrixConfig, WarmupConfig, warmup_settings

    run = tmp_path / "run"
    shutil.copytree(influence_run, run, ignore=shutil.ignore_patterns(
        "stages", "attribution.npy", "val_tasks.txt", "jobs", "progress"))
    fraction, lora = warmup_settings("less", fraction=0.5, epochs=2, r=4, batch_size=4,
                                     effective_batch=4, max_length=64, learning_rate=1e-3,
                                     device="cpu")
    chain = [jobs.link(WARMUP.name, WarmupConfig("tiny-random-llama", fraction, lora)),
             jobs.link(FEATURES_STAGE.name, FeatureSettings(dim=DIM, val_per_task=PER_TASK,
                                                            max_length=64,
                                                            val_max_new_tokens=8,
                                                            device="cpu")),
             jobs.link(MATRIX_STAGE.name, MatrixConfig())]
    store = RunStore(run, create=False)
    jobs.start_job(store, "influence", json.loads(json.dumps(chain)))
    status = jobs.wait_for_job(store, "influence", timeout_s=300)
    assert status.state == "done", status.log_tail
    assert (status.step, status.steps) == (3, 3)
    cli = RunStore(influence_run, create=False)
    for stage in (WARMUP, FEATURES_STAGE, MATRIX_STAGE):
        assert runner.latest(store, stage).name == runner.latest(cli, stage).name
    np.testing.assert_allclose(np.load(run / "attribution.npy"),
                               np.load(influence_run / "attribution.npy"), atol=1e-5)
    assert (run / "val_tasks.txt").read_text() == (influence_run / "val_tasks.txt").read_text()
