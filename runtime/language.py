"""Whether a question is in English: Quadrant writes English paraphrases, so a question in another language
with no phrasings of the user's own would be wrapped in English word salad ("Is ¿Hay derrame pleural?
present?") and its verdict would judge the salad.

Short clinical questions are hard for any language identifier: "Effusion?", "Pneumothorax?" and "Consolidation
RLL?" are French, Latin or Italian as much as English. So the rule, chosen by measurement on short clinical
questions (tests/data/languages.json; the README has the counts), takes three steps:

1. a letter of another script (Cyrillic, Greek, CJK, Arabic, ...) or Spanish "¿"/"¡": not English;
2. every word one Quadrant knows as English (the built-in bank's words, its question and frame words, the
   chest abbreviations): English, whatever an identifier would say about "Pneumothorax?";
3. otherwise lingua (a language identifier made for short text), over CANDIDATES: not English when its best
   language is another one with confidence >= MIN_OTHER, English's confidence is below MAX_ENGLISH, and the
   evidence is more than one word: at least two words Quadrant does not know, or one with a letter English
   does not use (é, ü, ñ, ...). A single unknown word ("Pneumoperitoneum?", "Cephalization?") is a medical
   term more often than a foreign question, and lingua calls such terms Italian or French.

English must never be refused, so the rule errs towards English: a few one-word foreign questions
("Pleuraerguss?") get through, and are then paraphrased by the English rules.

lingua's language models load on first use (about 0.3 s and 40 MB for the seven candidates), only for a
question with a word Quadrant does not know; the package itself is imported only then.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

from .errors import MissingDependencyError

#: the languages the identifier chooses among: English and the languages most clinical questions come in
CANDIDATES = ("ENGLISH", "SPANISH", "GERMAN", "FRENCH", "ITALIAN", "PORTUGUESE", "DUTCH")
MIN_OTHER = 0.3
MAX_ENGLISH = 0.2


@dataclass(frozen=True)
class Language:
    """What the rule found: `english`, and otherwise the language (or script) it looks like, and why."""

    english: bool
    name: str  # "English", "Spanish", "Cyrillic script", ...
    evidence: str  # how it was decided: "known words", "script", "lingua 0.87"


def identify(text: str, known: frozenset[str]) -> Language:
    """Whether `text` is English, by the rule of the module docstring; `known` is the set of English words
    Quadrant knows (lower-case), see `known_english_words`."""
    script = _other_script(text)
    if script:
        return Language(False, f"{script if len(script) <= 3 else script.title()} script", "script")
    if "¿" in text or "¡" in text:
        return Language(False, "Spanish", "inverted question mark")
    unknown = [w for w in _words(text) if w not in known and not _plural_known(w, known)]
    if not unknown:
        return Language(True, "English", "known words")
    values = _confidences(text)
    best = max(values, key=values.get)
    english = values.get("ENGLISH", 0.0)
    enough = len(unknown) >= 2 or any(not w.isascii() for w in unknown)
    if enough and best != "ENGLISH" and values[best] >= MIN_OTHER and english < MAX_ENGLISH:
        return Language(False, best.title(), f"lingua {values[best]:.2f}, English {english:.2f}")
    return Language(True, "English", f"lingua English {english:.2f}")


def _words(text: str) -> list[str]:
    from .questions import tokens

    return [w for w in tokens(text) if not w.isdigit()]


def _plural_known(word: str, known: frozenset[str]) -> bool:
    return (word.endswith("s") and word[:-1] in known) or (word.endswith("es") and word[:-2] in known)


def _other_script(text: str) -> str | None:
    """The first script of a letter that is not Latin, by its Unicode name ("CYRILLIC", "CJK", "ARABIC")."""
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            script = name.split(" ", 1)[0]
            if name and script != "LATIN":
                return script
    return None


def _confidences(text: str) -> dict[str, float]:
    """lingua's confidence per candidate language (they sum to 1)."""
    detector = _detector()
    return {c.language.name: c.value for c in detector.compute_language_confidence_values(text)}


def load_detector() -> None:
    """Build the language detector now: a server does it at start, so that no clinician's first question with a
    word Quadrant does not know waits for it (about a second); a one-off command leaves it to the first such
    question, or never builds it. lingua reads its language models on the first detection, so one is run."""
    _confidences("Is there a pleural effusion?")


@functools.lru_cache(maxsize=1)
def _detector():
    try:
        from lingua import Language as LinguaLanguage, LanguageDetectorBuilder
    except ImportError as exc:  # a core dependency: only a broken install lacks it
        raise MissingDependencyError(
            "lingua-language-detector is not installed (it tells English questions from others): "
            "pip install lingua-language-detector"
        ) from exc
    languages = [getattr(LinguaLanguage, name) for name in CANDIDATES]
    return LanguageDetectorBuilder.from_languages(*languages).build()


@functools.lru_cache(maxsize=1)
def known_english_words() -> frozenset[str]:
    """The English words Quadrant itself knows: every word of the built-in bank (keywords, phrasings,
    synonyms), the words its question rule and rewrites use, and the chest abbreviations with their
    expansions."""
    from . import questions, rewrites
    from .abbreviations import vocabulary
    from .bank import load_bank

    words = set(vocabulary())
    for finding in load_bank().findings.values():
        words |= finding.vocabulary
    words |= questions.GENERIC_WORDS | questions.AUXILIARIES | questions.NEGATIVE_AUXILIARIES | questions.WH_WORDS
    words |= questions.INSTRUCTIONS | questions.FRAME_LEADS | rewrites.SAFE_MODIFIERS | rewrites.PREPOSITIONS
    words |= rewrites.PREDICATE_WORDS
    words |= {w for t in questions.NEGATIVE_AUXILIARIES for w in questions.tokens(t)}
    return frozenset(words)
