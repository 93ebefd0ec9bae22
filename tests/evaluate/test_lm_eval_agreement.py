"""Our scorers next to lm-evaluation-harness's own rules, offline.

Each lm-eval task YAML is included as it ships, with only its dataset swapped for a local JSONL
written here from ../shared/data; a fixed set of realistic outputs is run through lm-eval's task
filters (`Task.apply_filters`) and metrics (`Task.process_results`) and through our benchmark.
Where lm-eval's rule and ours should agree they must agree item for item: our `strict` scores are
lm-eval's strict rules, and on outputs in the harness's own answer format our lenient verdicts
equal its. Where we are deliberately more lenient (a correct answer in another common chat format)
we credit what lm-eval does not; nowhere does lm-eval credit an answer we mark wrong.
"""
from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from selection_core.evaluate import get_benchmark
from selection_core.evaluate.base import EvalItem
from selection_core.evaluate.ifeval import _checkers

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

TASKS = Path(lm_eval.__file__).parent / "tasks"


@pytest.fixture(scope="module")
def local_task(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """lm-eval's task `yaml` (a path under lm_eval/tasks) over `docs` instead of the hub."""
    root = tmp_path_factory.mktemp("lm_eval_tasks")

    def build(name: str, yaml: str, docs: list[dict[str, Any]], splits: Sequence[str]) -> Any:
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
        config = {"include": str(TASKS / yaml), "task": f"local_{name}", "dataset_path": "json",
                  "dataset_name": None,
                  "dataset_kwargs": {"data_files": {split: str(data) for split in splits},
                                     "cache_dir": str(root / "datasets")}}
        (root / f"{name}.yaml").write_text(json.dumps(config))
        manager = TaskManager(include_path=str(root), include_defaults=False)
        return manager.load(f"local_{name}")["tasks"][f"local_{name}"]

    return build


def lm_eval_verdicts(task: Any, outputs: Sequence[str]) -> list[dict[str, Any]]:
    """lm-eval's metrics per output ({filter name: {metric: value}}), output i for doc i."""
    instances = []
    for index, (doc, output) in enumerate(zip(task.eval_docs, outputs, strict=True)):
        instance = Instance(request_type=task.OUTPUT_TYPE, doc=doc, arguments=("", {}), idx=0,
                            metadata=(task.config.task, index, 1))
        instance.resps = [output]
        instances.append(instance)
    task._instances = instances
    task.apply_filters()
    return [{name: task.process_results(instance.doc, [response])
             for name, response in instance.filtered_resps.items()} for instance in instances]


def ours(benchmark: str, items: Sequence[EvalItem], outputs: Sequence[str]
         ) -> list[dict[str, Any]]:
    scorer = get_benchmark(benchmark)
    return [scorer.score_item(item, output) for item, output in zip(items, outputs, strict=True)]


def compare(task: Any, benchmark: str, items: list[EvalItem], docs: list[dict[str, Any]],
            templates: dict[str, Sequence[str]], fill: Callable[[str, int], str]
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Every template for every doc: (lm-eval's verdicts, ours, the template's kind)."""
    theirs, mine, kinds = [], [], []
    for kind, forms in templates.items():
        for form in forms:
            outputs = [fill(form, index) for index in range(len(docs))]
            theirs += lm_eval_verdicts(task, outputs)
            mine += ours(benchmark, items, outputs)
            kinds += [kind] * len(outputs)
    return theirs, mine, kinds


def check(theirs: list[bool], mine: list[bool], kinds: list[str]) -> None:
    for their, my, kind in zip(theirs, mine, kinds, strict=True):
        assert not (their and not my), "lm-eval credits an answer we mark wrong"
        if kind == "agree":
            assert my == their
        else:  # "lenient": a right answer in a format lm-eval's rule does not read
            assert my and not their


GSM_TEMPLATES = {
    "agree": ("She sells 16 - 3 - 4 = 9 eggs.\n#### {gold}", "The answer is {gold}.", "{gold}",
              "So she makes ${gold}.", "Step 1: add.\n\n**Answer:** {gold}",
              "16 - 3 = 13, so the answer is {wrong}.", "#### {wrong}", "I cannot tell."),
    "lenient": ("The answer is {gold} dollars, from 2 sales.",
                "So it is $\\boxed{{{gold}}}$ (check: 1 + 1 = 2)."),
}


def _gsm_fill(golds: list[str]) -> Callable[[str, int], str]:
    return lambda form, index: form.format(gold=golds[index], wrong=int(golds[index]) + 1)


def check_gsm(task: Any, benchmark: str, items: list[EvalItem],
              docs: list[dict[str, Any]]) -> None:
    theirs, mine, kinds = compare(task, benchmark, items, docs, GSM_TEMPLATES,
                                  _gsm_fill([item.gold for item in items]))
    # our strict score is lm-eval's strict-match, output for output
    assert [bool(t["strict-match"]["exact_match"]) for t in theirs] == [m["strict"] for m in mine]
    check([bool(t["flexible-extract"]["exact_match"]) for t in theirs],
          [m["correct"] for m in mine], kinds)


def test_gsm8k_strict_and_flexible(local_task, shared_data: Path) -> None:
    docs = [json.loads(line) for line in
            (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:3]]
    task = local_task("gsm8k", "gsm8k/gsm8k.yaml", docs, ("test", "train"))
    check_gsm(task, "gsm8k", get_benchmark("gsm8k").load()[:3], docs)


def test_gsm_plus_strict_and_flexible(local_task, shared_data: Path) -> None:
    items = [item for item in get_benchmark("gsm-plus").load() if item.gold.isdigit()][:3]
    with gzip.open(shared_data / "gsm_plus" / "gsmplus_testmini.jsonl.gz", "rt") as handle:
        rows = [json.loads(line) for line in handle]
    docs = [rows[int(item.id)] for item in items]
    task = local_task("gsm_plus", "gsm_plus/gsm_plus_mini.yaml", docs, ("testmini",))
    check_gsm(task, "gsm-plus", items, docs)


def test_bbh_chain_of_thought_answers(local_task, shared_data: Path) -> None:
    for task_name in ("date_understanding", "boolean_expressions"):
        path = shared_data / "bbh" / "tasks" / f"{task_name}.json"
        docs = json.loads(path.read_text())["examples"][:3]
        task = local_task(f"bbh_{task_name}", f"bbh/cot_fewshot/{task_name}.yaml", docs,
                          ("test",))
        items = get_benchmark("bbh").load(path)[:3]
        multiple_choice = docs[0]["target"].startswith("(")

        def fill(form: str, index: int) -> str:
            target = docs[index]["target"]
            wrong = "(A)" if target != "(A)" else "(B)"
            if not multiple_choice:
                wrong = {"True": "False", "False": "True"}[target]
            return form.format(target=target, wrong=wrong, letter=target.strip("()"))

        templates: dict[str, Sequence[str]] = {
            "agree": ("Let's think step by step.\nSo the answer is {target}.",
                      "So the answer is {wrong}.", "I am not sure."),
            "lenient": ("The answer is {target}.", "So the answer is {target}"),
        }
        if multiple_choice:
            templates = {**templates,
                         "lenient": (*templates["lenient"], "So the answer is {letter}.",
                                     "Reasoning.\nAnswer: {target}")}
        theirs, mine, kinds = compare(task, "bbh", items, docs, templates, fill)
        check([bool(t["get-answer"]["exact_match"]) for t in theirs],
              [m["correct"] for m in mine], kinds)


def test_mmlu_generative_letters(local_task, shared_data: Path) -> None:
    path = shared_data / "mmlu" / "test" / "anatomy_test.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:4]
    docs = [{"question": row["question"], "choices": [row[f"choice{i}"] for i in range(4)],
             "answer": int(row["answer"]), "subject": "anatomy"} for row in rows]
    task = local_task("mmlu", "mmlu/generative/mmlu_anatomy.yaml", docs, ("test", "dev"))
    items = get_benchmark("mmlu").load(path)[:4]

    def fill(form: str, index: int) -> str:
        letter = "ABCD"[docs[index]["answer"]]
        return form.format(letter=letter, lower=letter.lower(), text=docs[index]["choices"][
            docs[index]["answer"]], wrong="ABCD"[(docs[index]["answer"] + 1) % 4])

    templates = {"agree": ("{letter}", "{lower}", "({letter})", "{wrong}", "({wrong})"),
                 "lenient": ("{letter}. {text}", "The answer is {letter}.",
                             "It is either {wrong} or {letter}; I would choose {letter}.")}
    theirs, mine, kinds = compare(task, "mmlu", items, docs, templates, fill)
    check([bool(t["get_response"]["exact_match"]) for t in theirs],
          [m["correct"] for m in mine], kinds)


def test_math_answers_and_strict_score(local_task, shared_data: Path) -> None:
    rows = [json.loads(line) for line in
            (shared_data / "math" / "test.jsonl").read_text().splitlines()]
    chosen = [index for index, row in enumerate(rows) if row["type"] == "Algebra"][:3]
    docs = [rows[index] for index in chosen]
    task = local_task("math", "hendrycks_math/hendrycks_math_algebra.yaml", docs,
                      ("test", "train"))
    everything = get_benchmark("math").load()
    items = [everything[index] for index in chosen]

    def fill(form: str, index: int) -> str:
        return form.format(gold=items[index].gold, wrong=f"{items[index].gold}+1")

    templates = {"agree": ("The answer is ${gold}$.", "Final Answer: ${wrong}$.", "No idea."),
                 "lenient": ("So $x = 2$ and the answer is ${gold}$.",
                             "The final answer is $\\boxed{{{gold}}}$.")}
    theirs, mine, kinds = compare(task, "math", items, docs, templates, fill)
    verdicts = [bool(t["none"]["exact_match"]) for t in theirs]
    check(verdicts, [m["correct"] for m in mine], kinds)
    # where lm-eval reads the same answer, our strict score is its Hendrycks `is_equiv`
    assert [m["strict"] for m, kind in zip(mine, kinds, strict=True) if kind == "agree"] == \
        [v for v, kind in zip(verdicts, kinds, strict=True) if kind == "agree"]


def test_ifeval_item_for_item(local_task, shared_data: Path) -> None:
    _checkers()  # lm-eval's IFEval module, offline (its sentence model from the project cache)
    lines = (shared_data / "ifeval" / "input_data.jsonl").read_text().splitlines()[:6]
    docs = [json.loads(line) for line in lines]
    task = local_task("ifeval", "ifeval/ifeval.yaml", docs, ("train",))
    items = get_benchmark("ifeval").load(limit=None)[:6]
    for output in ("hello world", "HERE IS MY ANSWER, IN CAPITALS.\n\nP.S. done",
                   "*an* essay: " + "word " * 400, '{"answer": "json"}'):
        theirs = lm_eval_verdicts(task, [output] * len(docs))
        mine = ours("ifeval", items, [output] * len(docs))
        for their, my in zip(theirs, mine, strict=True):
            assert their["none"]["prompt_level_strict_acc"] == my["correct"]
            assert their["none"]["prompt_level_loose_acc"] == my["loose_correct"]
            assert their["none"]["inst_level_strict_acc"] == my["strict"]
            assert their["none"]["inst_level_loose_acc"] == my["loose"]
