"""What a prompt can be (no torch here, so benchmarks and the CLI can build prompts cheaply)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence


class RawText(str):
    """Prompt text a model sees exactly as written, with no template around it: few-shot prompts
    scored the way the reference harnesses score them (MMLU's 5-shot text ending in "Answer:")."""


# One user turn (text), text sent as it is (RawText), or chat turns ending with a user turn
# (few-shot examples as earlier user/assistant turns, as the reference harnesses send them) — or
# with an assistant turn whose text the answer continues (a prefill).
Prompt = str | Sequence[Mapping[str, str]]
