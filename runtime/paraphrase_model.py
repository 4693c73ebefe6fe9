"""An optional local paraphrase model (``--paraphraser MODEL_DIR``): a Hugging Face causal language model with a
chat template writes candidate paraphrases, offline, the way PSF-Med used GPT-4 but without sending a
study's question off the machine.

A model's candidates are never trusted as they come: each must pass Quadrant's question rule and the
faithfulness filter (`faithfulness_problem`: the finding's words or their bank synonyms kept, every qualifier
kept, no new finding or content word, the same polarity); duplicates are dropped, and `paraphrase_set` tops
the set up from the rule-based rewrites when fewer than K survive. Decoding is greedy, so the same question
gives the same candidates run after run.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from .bank import Bank, load_bank
from .errors import MissingDependencyError, ModelError, ModelNotFoundError
from .questions import GENERIC_WORDS, Phrasing, key, question_problem, tokens
from .rewrites import core_question

INSTRUCTION = (
    "Rewrite the following yes/no question about a chest X-ray in {n} different ways. Every rewrite must ask "
    "exactly the same thing: keep the finding and every detail (side, size, location, time), add nothing, and "
    "keep it a yes/no question. Write one question per line, with no numbering and nothing else.\n\n"
    "Question: {question}"
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|[a-z][.)]|q\s*\d*\s*[:.)])\s*", re.I)


def _stem(word: str) -> str:
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)]
    return word


def faithfulness_problem(question: str, candidate: str, bank: Bank | None = None) -> str | None:
    """Why `candidate` does not ask exactly what `question` asks, or None. The two are compared without their
    content-free frames, word stems against word stems; a word of the question's finding may be replaced by
    another word its bank entry knows."""
    from .paraphrases import asks_absence  # paraphrases imports this module's users, not the other way

    bank = bank or load_bank()
    q_words, c_words = tokens(core_question(question)), tokens(core_question(candidate))
    if asks_absence(question, bank) != asks_absence(candidate, bank):
        return "it turns a question about presence into one about absence, or the reverse"
    q_findings, c_findings = bank.named(q_words), bank.named(c_words)
    if q_findings - c_findings:
        return f"it drops the finding {sorted(q_findings - c_findings)[0]!r}"
    if c_findings - q_findings:
        return f"it adds the finding {sorted(c_findings - q_findings)[0]!r}"
    vocabulary = {_stem(w) for name in q_findings for w in bank.findings[name].vocabulary}
    generic = {_stem(w) for w in GENERIC_WORDS}
    q_stems, c_stems = {_stem(w) for w in q_words}, {_stem(w) for w in c_words}
    dropped = sorted(q_stems - c_stems - vocabulary - generic)
    if dropped:
        return f"it drops {dropped[0]!r}"
    added = sorted(c_stems - q_stems - vocabulary - generic)
    if added:
        return f"it adds {added[0]!r}"
    return None


def clean_lines(text: str) -> list[str]:
    """Candidate questions from a model's reply: one a line, bullets, numbers and quotes taken off."""
    out = []
    for line in text.splitlines():
        line = _BULLET.sub("", line.strip()).strip().strip("\"'\u201c\u201d").strip()
        if line:
            out.append(line)
    return out


def faithful_candidates(question: str, texts: list[str], bank: Bank | None = None) -> list[Phrasing]:
    """The candidates that pass the question rule and the faithfulness filter, duplicates dropped, in order."""
    seen = {key(question)}
    out = []
    for text in texts:
        if key(text) in seen or question_problem(text, "") is not None:
            continue
        if faithfulness_problem(question, text, bank) is not None:
            continue
        seen.add(key(text))
        out.append(Phrasing(text, source="model"))
    return out


class LocalParaphraser:
    """A local causal LM with a chat template, read from `model_dir` (never the network) by `load()`.

    Constructing one only checks the folder, so options that name a missing paraphraser fail before any model
    loads, and options travel to an evaluation's workers without the weights; `Checker.prepare()` loads it."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_new_tokens: int = 192):
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise ModelNotFoundError(
                f"paraphraser {self.model_dir} is not a local model directory: download the model beforehand "
                "(e.g. `hf download Qwen/Qwen2.5-1.5B-Instruct --local-dir DIR`) and give its folder"
            )
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.tokenizer = None
        self.model = None

    @cached_property
    def fingerprint(self) -> str:
        """Of the weight files: what a run record compares, so a rerun with other weights is caught."""
        from .fingerprint import fingerprint

        return fingerprint(self.model_dir)

    def load(self) -> LocalParaphraser:
        """Read the model and tokenizer (once; several checkers may share one paraphraser)."""
        if self.model is not None:
            return self
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - transformers is a core dependency
            raise MissingDependencyError(f"--paraphraser needs transformers and torch: {exc}") from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load paraphraser {self.model_dir} as a causal language model: {exc}") from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(f"paraphraser {self.model_dir} has no chat template: use an instruct/chat model")
        device = "cuda" if self.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        self.tokenizer, self.model = tokenizer, model.to(device).eval()
        return self

    def generate(self, question: str, n: int) -> str:
        """The model's raw reply to the instruction for `question`, greedy."""
        import torch

        if self.model is None:
            self.load()
        messages = [{"role": "user", "content": INSTRUCTION.format(n=n, question=question)}]
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.model.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=pad)
        return self.tokenizer.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def paraphrases(self, question: str, k: int, bank: Bank | None = None) -> list[Phrasing]:
        """Up to k + 3 asked for; the faithful, accepted, distinct ones returned (maybe fewer than k)."""
        return faithful_candidates(question, clean_lines(self.generate(question, k + 3)), bank)
