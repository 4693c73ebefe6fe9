"""Reading yes/no off the next-token logits: which token ids count as "yes" and "no", and the arithmetic.

Scoring the first answer token instead of generating text is what makes a check cost one forward pass per
prompt (README, "What a check does"). Tokenizers differ in whether the answer follows a space ("ASSISTANT: yes") or not
("model\nyes"), so every casing with and without a leading space is tried and the single-token ones kept.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import OptionError, UnsupportedModelError

if TYPE_CHECKING:  # torch only where logits are read: the decision rules and metrics run without it
    import torch

_VARIANTS = {
    "yes": ("yes", "Yes", "YES"),
    "no": ("no", "No", "NO"),
}


@dataclass(frozen=True)
class AnswerTokens:
    """The token ids whose logits are summed (logsumexp) into l_yes and l_no."""

    yes: tuple[int, ...]
    no: tuple[int, ...]

    def to_json(self) -> dict:
        return {"yes": list(self.yes), "no": list(self.no)}


def find_answer_tokens(tokenizer) -> AnswerTokens:
    """Collect the single-token spellings of yes and no; refuse a tokenizer that has none on either side."""
    found: dict[str, list[int]] = {}
    for side, words in _VARIANTS.items():
        ids: list[int] = []
        for word in words:
            for text in (word, " " + word):
                encoded = tokenizer.encode(text, add_special_tokens=False)
                if len(encoded) == 1 and encoded[0] not in ids:
                    ids.append(encoded[0])
        found[side] = sorted(ids)
    overlap = set(found["yes"]) & set(found["no"])
    if not found["yes"] or not found["no"] or overlap:
        missing = [side for side in ("yes", "no") if not found[side]]
        reason = f"no single-token spelling of {' or '.join(missing)}" if missing else "yes and no share a token"
        raise UnsupportedModelError(
            f"this tokenizer cannot be scored from one answer token ({reason}); "
            "use --scoring generate to generate and parse the answer instead"
        )
    return AnswerTokens(yes=tuple(found["yes"]), no=tuple(found["no"]))


def margins_from_logits(logits: torch.Tensor, tokens: AnswerTokens) -> torch.Tensor:
    """m = logsumexp(yes logits) - logsumexp(no logits), row by row, computed in float32."""
    import torch

    logits = logits.float()
    yes = torch.logsumexp(logits[..., list(tokens.yes)], dim=-1)
    no = torch.logsumexp(logits[..., list(tokens.no)], dim=-1)
    return yes - no


@dataclass(frozen=True)
class Answer:
    """One prompt's reading: margin > 0 means yes. Generated answers may be "unclear" with no margin."""

    answer: str
    margin: float | None
    generated: str | None = None

    @classmethod
    def from_margin(cls, margin: float) -> "Answer":
        return cls(answer="yes" if margin > 0 else "no", margin=float(margin))

    @property
    def p_yes(self) -> float | None:
        if self.margin is None:
            return None
        return _sigmoid(self.margin)

    @property
    def entropy(self) -> float | None:
        """Binary entropy of (p_yes, 1 - p_yes) in bits, computed stably from the margin."""
        if self.margin is None:
            return None
        return binary_entropy_bits(self.margin)

    def negated(self) -> "Answer":
        """The same reading seen through an inverted phrasing: yes to "can it be ruled out?" means no."""
        flipped = {"yes": "no", "no": "yes"}.get(self.answer, self.answer)
        margin = None if self.margin is None else -self.margin
        return Answer(answer=flipped, margin=margin, generated=self.generated)


def _sigmoid(m: float) -> float:
    if m >= 0:
        return 1.0 / (1.0 + math.exp(-m))
    e = math.exp(m)
    return e / (1.0 + e)


def binary_entropy_bits(margin: float) -> float:
    """H(sigmoid(m)) in bits without computing log(0): uses log p = -softplus(-m)."""
    p = _sigmoid(margin)
    log_p = -_softplus(-margin)
    log_q = -_softplus(margin)
    return -(p * log_p + (1.0 - p) * log_q) / math.log(2.0)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


_HEDGES = ("unclear", "uncertain", "cannot", "can't", "not sure", "possibly", "maybe", "indeterminate")


def parse_generated(text: str) -> Answer:
    """Generate-and-parse mode: the first yes/no word decides, unless the text hedges before it."""
    words = "".join(c.lower() if c.isalpha() or c.isspace() or c == "'" else " " for c in text).split()
    lowered = " ".join(words)
    for word in words:
        if word in ("yes", "no"):
            before = lowered.split(word, 1)[0]
            if any(h in before for h in _HEDGES):
                break
            return Answer(answer=word, margin=None, generated=text)
    return Answer(answer="unclear", margin=None, generated=text)


#: Where a generated answer is read: `direct` (the first yes/no word), `answer-tag` (inside the last
#: <answer>...</answer>, as R1-style reasoning models such as MedVLM-R1 write it), `think` (after the last
#: </think>, preferring the words after a final "answer:" / "answer is").
ANSWER_FORMATS = ("direct", "answer-tag", "think")
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_FINAL_ANSWER = re.compile(r"\banswer\b\W*(?:is\b\W*)?", re.IGNORECASE)


@dataclass(frozen=True)
class Generation:
    """How a model is scored when its first token is not the answer: the default scoring mode, how many
    tokens it may generate (a reasoning model thinks first), and where its answer is written."""

    scoring: str = "logits"
    max_new_tokens: int = 8
    answer_format: str = "direct"

    def __post_init__(self):
        if self.answer_format not in ANSWER_FORMATS:
            raise OptionError(f"unknown answer format {self.answer_format!r}; choose one of {', '.join(ANSWER_FORMATS)}")
        if self.max_new_tokens < 1:
            raise OptionError(f"the token budget must be >= 1, got {self.max_new_tokens}")


def read_generated(text: str, answer_format: str = "direct") -> Answer:
    """The answer in a generated text, read where the model's convention puts it. A text with no answer
    there (a reasoning cut off by the token budget, an empty tag) or a hedged one is "unclear"."""
    region = answer_region(text, answer_format)
    if region is None:
        return Answer(answer="unclear", margin=None, generated=text)
    return Answer(answer=parse_generated(region).answer, margin=None, generated=text)


def answer_region(text: str, answer_format: str) -> str | None:
    """The part of `text` that holds the answer, or None where the convention finds none."""
    if answer_format == "direct":
        return text
    if answer_format == "answer-tag":
        tags = _ANSWER_TAG.findall(text)
        return tags[-1] if tags else None
    if answer_format == "think":
        lowered = text.lower()
        if "</think>" in lowered:
            text = text[lowered.rindex("</think>") + len("</think>"):]
        elif "<think>" in lowered:
            return None  # still reasoning when the budget ran out
        markers = list(_FINAL_ANSWER.finditer(text))
        return text[markers[-1].end():] if markers else text
    raise OptionError(f"unknown answer format {answer_format!r}; choose one of {', '.join(ANSWER_FORMATS)}")
