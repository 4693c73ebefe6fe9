"""Misspelt finding names, corrected in Quadrant's own paraphrases with a note in the verdict.

"is there cardiomegally" is a question about cardiomegaly; copied into five paraphrases, the typo would test
how the model reads a misspelling six times over, and the bank (which matches whole words) would not know the
finding. So a word Quadrant does not know that is one or two letters away from a bank finding's word
("cardiomegally", "pnuemothorax", "efusion", "atelectisis") is corrected in the paraphrases, prompt 0 stays as
typed (the model is still asked the user's own words), and the verdict's `warnings` says what was read how.

Only words of at least MIN_LENGTH letters are corrected, towards a word of a bank keyword or synonym, when
difflib's similarity ratio is at least MIN_RATIO, the first letter agrees and the lengths differ by at most
MAX_LENGTH_CHANGE: "plueral" is 0.86 from "pleural" and is corrected; "pneumonitis" (a different finding) is
0.80 from "pneumonia", "cardiomyopathy" 0.69 from "cardiomegaly", and "bronchitis" is four letters shorter
than "bronchiectasis": they stay.
"""

from __future__ import annotations

import difflib
import functools
import re

from .bank import Bank, load_bank
from .questions import tokens

MIN_LENGTH = 6
MIN_RATIO = 0.85
MAX_LENGTH_CHANGE = 2


def correct_spelling(question: str, known: frozenset[str], bank: Bank | None = None) -> tuple[str, list[str]]:
    """(the question with misspelt finding words corrected, one note per correction). `known`: the English
    words Quadrant knows (`quadrant.language.known_english_words`), which are never corrected."""
    targets = _finding_words(bank or load_bank())
    notes = []
    corrected = question
    for word in dict.fromkeys(tokens(question)):
        if len(word) < MIN_LENGTH or word in known or _plural_of(word, known) or word.isdigit():
            continue
        candidates = [t for t in difflib.get_close_matches(word, targets, n=3, cutoff=MIN_RATIO)
                      if t[0] == word[0] and abs(len(t) - len(word)) <= MAX_LENGTH_CHANGE]
        if not candidates:
            continue
        right = candidates[0]
        corrected = re.sub(rf"\b{re.escape(word)}\b", lambda m, r=right: _same_case(m.group(0), r), corrected,
                           flags=re.I)
        notes.append(f"'{word}' read as '{right}' (a bank finding's word): the paraphrases spell it so; "
                     "prompt 0 is asked as typed")
    return corrected, notes


def _plural_of(word: str, known: frozenset[str]) -> bool:
    return (word.endswith("s") and word[:-1] in known) or (word.endswith("es") and word[:-2] in known)


def _same_case(typed: str, right: str) -> str:
    if typed.isupper():
        return right.upper()
    return right[:1].upper() + right[1:] if typed[:1].isupper() else right


@functools.lru_cache(maxsize=8)
def _finding_words(bank: Bank) -> tuple[str, ...]:
    """Every word of every keyword and synonym of the bank that is long enough to be corrected towards."""
    words = set()
    for finding in bank.findings.values():
        for keyword in finding.keywords:
            words.update(keyword)
        for synonym in finding.synonyms:
            words.update(tokens(synonym))
    return tuple(sorted(w for w in words if len(w) >= MIN_LENGTH))
