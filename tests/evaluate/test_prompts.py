"""Golden prompts: `python -m selection_core prompts` prints, for a fixed item of every benchmark,
exactly the checked-in text a model sees under the default (papers') protocol; few-shot chats go
through a model's chat template turn by turn."""
from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from selection_core.cli import main
from selection_core.evaluate import BENCHMARKS
from selection_core.evaluate.bbh import BBH
from selection_core.lm.formatting import format_prompt
from selection_core.lm.loading import load_causal_lm
from selection_core.lm.tiny import build_tiny_causal_lm

GOLDEN = Path(__file__).parent / "golden"
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_rendered_prompt_equals_the_golden_text(benchmark: str, shared_data: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "--benchmark", benchmark, "--n", "1"]) == 0
    printed = capsys.readouterr().out
    expected = (GOLDEN / f"{benchmark}.txt").read_text(encoding="utf-8")
    assert printed == expected, "".join(difflib.unified_diff(
        expected.splitlines(True), printed.splitlines(True), "golden", "printed"))


def test_few_shot_turns_go_through_the_chat_template(shared_data: Path, tmp_path: Path) -> None:
    _, tokenizer = load_causal_lm(str(build_tiny_causal_lm(tmp_path / "tiny")), device="cpu",
                                  cache=False)
    tokenizer.chat_template = TEMPLATE
    item = BBH().load(shots=3, limit=1)[0]
    text = format_prompt(tokenizer, item.model_input())
    user, assistant = item.shots[0]
    assert text.startswith(f"<|user|>{user}<|end|><|assistant|>{assistant}<|end|><|user|>")
    assert text.endswith(f"<|user|>{item.prompt}<|end|><|assistant|>")
    assert text.count("<|user|>") == 4 and text.count("<|assistant|>") == 4


def test_prompts_command_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "--benchmark", "demo", "--n", "0"]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    try:  # argparse's own exit, or the CLI's one-line error
        code = main(["prompts", "--benchmark", "demo", "--protocol", "fast"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and "'fast'" in capsys.readouterr().err


def test_a_prefill_follows_the_generation_prompt(shared_data: Path, tmp_path: Path) -> None:
    """The kit appends MBPP's "```python\\ndef" after apply_chat_template(add_generation_prompt)."""
    _, tokenizer = load_causal_lm(str(build_tiny_causal_lm(tmp_path / "tiny")), device="cpu",
                                  cache=False)
    tokenizer.chat_template = TEMPLATE
    from selection_core.evaluate.mbpp import MBPP

    item = MBPP().load(limit=1)[0]
    assert format_prompt(tokenizer, item.model_input()) == \
        f"<|user|>{item.prompt}<|end|><|assistant|>```python\ndef"
    assert format_prompt(tokenizer, item.model_input(), use_chat_template=False) == \
        f"### Instruction:\n{item.prompt}\n\n### Response:\n```python\ndef"
