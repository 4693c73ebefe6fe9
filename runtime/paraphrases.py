"""Paraphrase sets: prompt 0 is the user's yes/no question, then K paraphrases that ask exactly the same thing.

Every accepted question (see `quadrant.questions` for the rule) gets K >= 2 distinct paraphrases, each itself
an accepted question and each recording its `source`; "distinct" ignores case, spacing and punctuation, and
no paraphrase repeats the question:

1. the user's own (``--paraphrase``, ``--paraphrases FILE``, the app's box, a manifest column): used exactly as
   given, after validation (sources "user" and "file"), in any language; at least two, and a duplicate (of
   the question or of another) is refused with a message naming both, as is, where the question names a bank
   finding, a phrasing naming another finding or turning presence into absence without the inverted mark;
2. with ``--paraphraser MODEL_DIR``, a local language model's candidates that pass the question rule and the
   faithfulness filter (source "model"), topped up from the rules below;
3. a bank finding asked plainly ("Is there a pleural effusion?", "Effusion?", "Would you say there is
   cardiomegaly?"): the bank's phrasings (source "bank"), then rewrites of the finding's term;
4. anything else, qualified findings ("a small left pleural effusion"), devices and their position, views,
   temporal questions, findings the bank does not know: the question with the bank's synonyms for the
   finding's words, qualifiers kept (source "bank"); its noun phrase asked in other words (source
   "rewrite", see `quadrant.rewrites`); and the question behind frames such as "Based on this radiograph,
   ..." (source "frame"), which fit any question.

Quadrant writes English only: a question in another language (`quadrant.language`) is refused unless the
user gives the phrasings, or a bank entry (an extending `--paraphrase-bank`) covers every word of it, whose
phrasings are then used as written, with nothing rewritten into English. In an English question the
standard chest abbreviations are written out in the paraphrases ("Consolidation RLL?" -> "Is there
consolidation in the right lower lobe?") and a misspelt finding name is corrected there with a note
(`quadrant.spelling`); prompt 0 is always the question as typed.

A paraphrase that asks something else shows up as a flip and makes a sound model look Fragile, so the rules
never narrow, widen or replace a finding: the bank's phrasings serve only a question that names the finding
with no qualifier and asks whether it is present; a question about absence ("Can effusion be ruled out?",
"Has the effusion resolved?") keeps its polarity (frames and synonyms only, or the bank's other absence
phrasings when it is one of them, the presence ones then marked ``inverted``).

Everything here is deterministic: the same question and options give the same set, in the same order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .bank import Bank, Match, load_bank
from .errors import OptionError, ParaphraseError, QuestionError
from .language import identify, known_english_words
from .questions import (
    AUXILIARIES,
    GENERIC_WORDS,
    MAX_QUESTION_CHARS,
    Phrasing,
    clip,
    first_word,
    json_type,
    key,
    question_problem,
    tokens,
    validate_paraphrase,
    validate_question,
)
from .rewrites import (
    core_question,
    frames,
    lower_first,
    position_question,
    split_lead,
    subject,
    substitute,
    templates,
)
from .spelling import correct_spelling
from .textfile import read_text_file

__all__ = [
    "DEFAULT_K",
    "MIN_K",
    "FINDINGS",
    "FINDING_QUESTIONS",
    "MAX_PARAPHRASES",
    "MAX_PARAPHRASE_FILE_BYTES",
    "MAX_QUESTION_CHARS",
    "ParaphrasePlan",
    "Phrasing",
    "asks_absence",
    "bank_phrasings",
    "check_k",
    "find_finding",
    "paraphrase_plan",
    "paraphrase_set",
    "parse_paraphrase_text",
    "phrasings_from_json",
    "qualifiers",
    "read_paraphrase_file",
    "rule_paraphrases",
    "validate_paraphrase",
    "validate_question",
]

DEFAULT_K = 5
#: a consistency verdict compares the question with at least this many phrasings of it
MIN_K = 2
MAX_PARAPHRASES = 64  # one forward pass each, all in one batch: a guard against a runaway list
MAX_PARAPHRASE_FILE_BYTES = 1_000_000

FINDINGS: tuple[str, ...] = load_bank().names
FINDING_QUESTIONS: dict[str, str] = load_bank().questions

# Words and word pairs that turn a question about presence into one about absence.
_ABSENCE_WORDS = frozenset(
    """
    no not without absent absence exclude excluded excluding excludable normal unremarkable negative
    resolved none nothing lack lacks lacking cannot never neither nor sharp preserved intact gone cleared
    disappeared
    """.split()
)
_ABSENCE_PAIRS = frozenset({("free", "of"), ("clear", "of"), ("rule", "out"), ("ruled", "out"), ("rules", "out")})
_NO_FINDING = "no finding"


# ------------------------------------------------------------------------------------------- word matching
def _rest(words: Sequence[str], m: Match | None) -> tuple[str, ...]:
    return tuple(words) if m is None else tuple(words[: m.start]) + tuple(words[m.end :])


def _absence_cue(words: Sequence[str], finding: str | None = None) -> str | None:
    ignore = {"normal", "unremarkable"} if finding == _NO_FINDING else set()
    for i, token in enumerate(words):
        if token in ("no", "not") and i == len(words) - 1 and i > 0 and words[i - 1] == "or":
            continue  # "Is there an effusion or not?" asks about presence
        if token in _ABSENCE_WORDS and token not in ignore:
            return token
        if tuple(words[i : i + 2]) in _ABSENCE_PAIRS:
            return " ".join(words[i : i + 2])
    return None


def find_finding(question: str, bank: Bank | None = None) -> str | None:
    """The canonical name of the bank finding the question names ("pleural effusion"), else None. Whole words,
    case- and punctuation-insensitive; where several match, the most specific (longest) keyword wins:
    "pleural thickening" over "pleural effusion"'s words, "calcified nodule" over "nodule"."""
    if not isinstance(question, str):
        return None
    m = (bank or load_bank()).match(tokens(core_question(question)))
    return m.finding if m else None


def asks_absence(question: str, bank: Bank | None = None) -> bool:
    """Whether the question's yes would mean a finding is absent ("Can effusion be ruled out?", "Is the heart
    size normal?", "Is there no pneumothorax?", "Is there any abnormality?" for "no finding"). A heuristic on
    words; double negatives count as absence. The bank's inverted phrasings all answer True."""
    words = tokens(core_question(question)) if isinstance(question, str) else ()
    m = (bank or load_bank()).match(words)
    if m is not None and m.absence_keyword:
        return True
    return _absence_cue(_rest(words, m), m.finding if m else None) is not None


def qualifiers(question: str, bank: Bank | None = None) -> list[str]:
    """Words of the question outside its finding's vocabulary and the generic words: the qualifiers that
    narrow or change what the bank asks ("small", "left", "new"), or, with no bank finding, its content words."""
    bank = bank or load_bank()
    words = tokens(core_question(question))
    m = bank.match(words)
    vocabulary = bank.findings[m.finding].vocabulary if m else frozenset()
    out = []
    for token in _rest(words, m):
        forms = {token, token[:-1] if token.endswith("s") else token, token[:-2] if token.endswith("es") else token}
        if not forms & (GENERIC_WORDS | vocabulary):
            out.append(token)
    return out


def bank_phrasings(finding: str, bank: Bank | None = None) -> list[Phrasing]:
    """The bank's phrasings for a finding (canonical name, any case): the non-inverted ones first, in bank
    order, then the inverted ones."""
    bank = bank or load_bank()
    name = " ".join(finding.lower().split()) if isinstance(finding, str) else finding
    if name not in bank.findings:
        raise ParaphraseError(f"unknown finding {finding!r}: the bank knows {', '.join(bank.names)}")
    return list(bank.findings[name].phrasings)


# ------------------------------------------------------------------------------------------ rule-based sets
def rule_paraphrases(question: str, bank: Bank | None = None) -> list[Phrasing]:
    """Every paraphrase the rules can write for an accepted question, best first, not yet deduplicated."""
    bank = bank or load_bank()
    core = core_question(question)
    words = tokens(core)
    m = bank.match(words)
    finding = bank.findings[m.finding] if m else None
    absent = asks_absence(core, bank)
    out = [Phrasing(core, source="rewrite")]
    lead, body = split_lead(core)
    if lead and first_word(body) in AUXILIARIES:  # "In the left lung, is there X?" -> "Is there X, in the left lung?"
        out.append(Phrasing(f"{body[:1].upper()}{body[1:].rstrip('?')}, {lower_first(lead.rstrip(' ,:'))}?",
                           source="rewrite"))
    if finding is not None:
        if key(core) in {key(p.text) for p in finding.phrasings if p.inverted}:
            out += [Phrasing(p.text, False, "bank") for p in finding.phrasings if p.inverted]
            out += [Phrasing(p.text, True, "bank") for p in finding.phrasings if not p.inverted]
        elif not absent and not qualifiers(core, bank):  # plainly: the bank, then its term asked by the rules
            out += [p for p in finding.phrasings if not p.inverted]
            if finding.term:
                out += [Phrasing(t, source="rewrite") for t in templates(finding.term, finding.plural)]
            return out + [Phrasing(t, source="frame") for t in frames(_full(core, finding.term, finding.plural))]
        out += [Phrasing(t, source="bank") for t in substitute(core, words[m.start : m.end], finding.synonyms)]
    shape = subject(core)
    framed = core
    if shape is not None and not absent:
        x, plural = shape
        names = [x] + (substitute(x, words[m.start : m.end], finding.synonyms, sentence=False) if finding else [])
        rows = [templates(name, plural) for name in names]
        for i in range(max(len(r) for r in rows)):
            for j in [i % len(rows)] + [j for j in range(len(rows)) if j != i % len(rows)]:
                if i < len(rows[j]):
                    out.append(Phrasing(rows[j][i], source="bank" if j else "rewrite"))
        framed = _full(core, x, plural)
    elif position_question(core):
        framed = position_question(core)
        out.append(Phrasing(framed, source="rewrite"))
        if finding is not None:
            out += [Phrasing(t, source="bank") for t in substitute(framed, words[m.start : m.end], finding.synonyms)]
    out += [Phrasing(t, source="frame") for t in frames(framed)]
    return out


def _full(core: str, x: str | None, plural: bool) -> str:
    """The question to put behind frames: shorthand ("Effusion?") asked in full ("Is there effusion?")."""
    if x is None or first_word(split_lead(core)[1]) in AUXILIARIES:
        return core
    return f"{'Are' if plural else 'Is'} there {x}?"


def _pick(question: str, candidates: Sequence[Phrasing], k: int, also: Sequence[str] = ()) -> list[Phrasing]:
    """The first k candidates that are accepted questions and distinct from the question, from `also` (other
    spellings of it) and from each other, ignoring case, spacing and punctuation."""
    seen = {key(question), *(key(a) for a in also)}
    out: list[Phrasing] = []
    for p in candidates:
        k_ = key(p.text)
        if k_ in seen or question_problem(p.text, "") is not None:
            continue
        seen.add(k_)
        out.append(p)
        if len(out) == k:
            break
    return out


def check_k(k: Any) -> int:
    """K, the number of paraphrases Quadrant writes, or OptionError: a whole number of at least MIN_K, since a
    consistency verdict compares the question with phrasings of it (with none, "consistent" is an empty
    pass)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_K:
        raise OptionError(
            f"the number of paraphrases K must be a whole number >= {MIN_K}, got {k!r}: a consistency verdict "
            "needs phrasings to compare (-k 5 is the default)"
        )
    return k


@dataclass(frozen=True)
class ParaphrasePlan:
    """A paraphrase set and what the verdict should say about how it was written."""

    phrasings: list[Phrasing]  # prompt 0 (the question as given) first
    warnings: list[str] = field(default_factory=list)  # e.g. a misspelt finding corrected in the paraphrases
    language: str = "English"  # the question's language, as `quadrant.language` found it


def paraphrase_plan(question: str, *, k: int = DEFAULT_K, user: Sequence[Phrasing] | None = None,
                    bank: Bank | None = None, paraphraser=None) -> ParaphrasePlan:
    """[Phrasing(question, source="question")] + K paraphrases, deterministic, with notes for the verdict.

    - `user` given and non-empty: exactly those after it (validated, at least MIN_K, none a duplicate of the
      question or of another, not cut to K; strings are accepted as non-inverted phrasings), in any language;
      at most MAX_PARAPHRASES.
    - else, for an English question, the first K distinct, accepted paraphrases: `paraphraser`'s faithful
      candidates when one is given (a `quadrant.paraphrase_model.LocalParaphraser`), then `rule_paraphrases` of
      the question with misspelt finding words corrected (see the module docstring);
    - else (another language) the phrasings of the bank entry that covers the question, as written.
    ParaphraseError when fewer than K distinct ones can be written or the user's are too few or repeat;
    QuestionError for a question `validate_question` refuses or one in another language with no phrasings to
    use; OptionError for a K that is not an integer >= MIN_K.
    """
    q = validate_question(question)
    original = Phrasing(q, source="question")
    bank = bank or load_bank()
    if user:
        return ParaphrasePlan([original, *_users(q, user, bank)])
    check_k(k)
    known = known_english_words()
    language = identify(q, known)
    if not language.english:
        return ParaphrasePlan([original, *_foreign(q, k, bank, language.name)], language=language.name)
    corrected, warnings = correct_spelling(q, known, bank)
    candidates = paraphraser.paraphrases(corrected, k, bank) if paraphraser is not None else []
    out = _pick(q, [*candidates, *rule_paraphrases(corrected, bank)], k)
    if len(out) < k:
        raise ParaphraseError(
            f"only {len(out)} distinct paraphrases can be written for {clip(q)!r}, fewer than K = {k}: lower -k, "
            "or give your own (--paraphrase TEXT, repeatable, or --paraphrases FILE; in the app, the "
            "paraphrases box), marking those whose yes means the finding is absent as inverted"
        )
    return ParaphrasePlan([original, *out], warnings)


def paraphrase_set(question: str, *, k: int = DEFAULT_K, user: Sequence[Phrasing] | None = None,
                   bank: Bank | None = None, paraphraser=None) -> list[Phrasing]:
    """The phrasings of `paraphrase_plan` (prompt 0 first), without its notes."""
    return paraphrase_plan(question, k=k, user=user, bank=bank, paraphraser=paraphraser).phrasings


def _users(question: str, user: Sequence[Phrasing], bank: Bank) -> list[Phrasing]:
    """The user's own paraphrases, validated: at least MIN_K, at most MAX_PARAPHRASES, none repeated, none
    asking another question where the bank can tell (`_asks_otherwise`)."""
    if isinstance(user, (str, Phrasing)):
        user = [user]
    if len(user) > MAX_PARAPHRASES:
        raise ParaphraseError(f"{len(user)} paraphrases given, over the limit of {MAX_PARAPHRASES}: give fewer")
    out: list[Phrasing] = []
    seen = {key(question): "the question"}
    for i, item in enumerate(user, 1):
        try:
            phrasing = Phrasing.from_json(item, source="user") if isinstance(item, (str, dict)) else item
            phrasing = validate_paraphrase(phrasing)
        except ParaphraseError as exc:
            raise ParaphraseError(f"paraphrase {i}: {exc}") from None
        wording = key(phrasing.text)
        if wording in seen:
            raise ParaphraseError(
                f"paraphrase {i} ({clip(phrasing.text)!r}) repeats {seen[wording]} (ignoring case, spacing and "
                "punctuation): each paraphrase must be a different wording"
            )
        seen[wording] = f"paraphrase {i}"
        otherwise = _asks_otherwise(question, phrasing, bank)
        if otherwise:
            raise ParaphraseError(f"paraphrase {i} ({clip(phrasing.text)!r}) {otherwise}")
        out.append(phrasing)
    if len(out) < MIN_K:
        raise ParaphraseError(
            f"{len(out)} paraphrase given: give at least {MIN_K}, since a consistency verdict compares the "
            "question with several wordings (or none, for Quadrant's own)"
        )
    return out


def _asks_otherwise(question: str, phrasing: Phrasing, bank: Bank) -> str | None:
    """How a user's phrasing of a question about a bank finding asks something else, or None: it names another
    finding instead, leaves one of the question's out, or asks about absence where the question asks about
    presence without being marked inverted (or the reverse). Such a phrasing makes a consistency verdict
    compare two questions: a sound model looks Fragile, or answers that disagree look consistent. A phrasing
    that names a sign beside the finding ("... pleural fluid, blunting the costophrenic angles?") only adds
    detail; one that names no bank finding ("Is there fluid around the lung?") is taken on trust for its
    finding, as is every phrasing of a question naming none."""
    asked = bank.named(tokens(core_question(question))) - {_NO_FINDING}
    if not asked:
        return None  # "no finding" is named by words such as "normal" in questions about anything
    every = bank.named(tokens(core_question(phrasing.text)))
    named = every - {_NO_FINDING}
    if named and not named & asked:
        return (f"asks about {' and '.join(sorted(named))}, not {' and '.join(sorted(asked))}: each paraphrase "
                "must ask the question's own question")
    if named and asked - named:
        return f"leaves out {' and '.join(sorted(asked - named))}: each paraphrase must ask the question's own question"
    if every and not named:
        return None  # only "no finding" named ("Is the heart normal in size?"): its absence words mean little
    absence = asks_absence(phrasing.text, bank)
    turned = absence != asks_absence(question, bank)
    if turned and not phrasing.inverted:
        how = ("whether the finding is absent where the question asks whether it is present" if absence
               else "whether the finding is present where the question asks whether it is absent")
        return (f"asks {how}: if its yes means the question's no, mark it inverted ('[inverted] ' or '! ' "
                "before it, \"inverted\": true in JSON)")
    if phrasing.inverted and not turned:
        return "is marked inverted, but its yes means what the question's yes means: remove the mark"
    return None


def _foreign(question: str, k: int, bank: Bank, language: str) -> list[Phrasing]:
    """A question in another language: the phrasings of a bank entry every word of the question belongs to
    (an institution's own entry in that language), as written; else QuestionError saying what to do."""
    words = tokens(question)
    m = bank.match(words)
    finding = bank.findings[m.finding] if m else None
    if finding is None or not set(words) <= finding.vocabulary:
        raise QuestionError(
            f"the question looks like {language}, and Quadrant writes its paraphrases in English: give your own "
            "phrasings in that language (--paraphrase TEXT, repeatable, or --paraphrases FILE; in the app, the "
            "paraphrases box), add a paraphrase bank entry in that language (--paraphrase-bank), or ask in English"
        )
    if key(question) in {key(p.text) for p in finding.phrasings if p.inverted}:  # asked about absence
        candidates = ([Phrasing(p.text, False, "bank") for p in finding.phrasings if p.inverted]
                      + [Phrasing(p.text, True, "bank") for p in finding.phrasings if not p.inverted])
    else:
        candidates = [p for p in finding.phrasings if not p.inverted]
    out = _pick(question, candidates, k)
    if len(out) < k:
        raise ParaphraseError(
            f"the bank entry {m.finding!r} has only {len(out)} other phrasings for {clip(question)!r}, fewer than "
            f"K = {k}: lower -k, add phrasings to the entry, or give your own (--paraphrase TEXT)"
        )
    return out


# ------------------------------------------------------------------------------------------ reading lists
_INVERTED_MARKER = re.compile(r"^\[inverted\]\s*", re.I)


def _parse_lines(text: str, where: str, source: str) -> list[Phrasing]:
    out = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        inverted = False
        marker = _INVERTED_MARKER.match(line)
        if marker:
            line, inverted = line[marker.end() :].strip(), True
        elif line.startswith("!"):
            line, inverted = line[1:].strip(), True
        if not line:
            raise ParaphraseError(f"{where}line {lineno}: the inverted marker has no paraphrase after it")
        try:
            out.append(validate_paraphrase(Phrasing(line, inverted, source)))
        except ParaphraseError as exc:
            raise ParaphraseError(f"{where}line {lineno}: {exc}") from None
    return out


def parse_paraphrase_text(text: str) -> list[Phrasing]:
    """Paraphrases written one a line (the app's box, a --paraphrase value, a plain-text file).

    Blank lines and lines starting with '#' are skipped. A line starting with the marker ``[inverted]``
    (any case) or ``!`` is an inverted phrasing, its yes meaning the finding is absent; the marker is
    stripped::

        Is there fluid in the pleural space?
        [inverted] Can a pleural effusion be ruled out?
        ! Are the lungs free of effusion?

    Empty text gives an empty list. ParaphraseError, naming the line, for a line that is not a yes/no
    question."""
    if not isinstance(text, str):
        raise ParaphraseError(f"paraphrases must be text, got {json_type(text)}")
    return _parse_lines(text, "", "user")


def phrasings_from_json(items: Any, *, source: str = "paraphrases") -> list[Phrasing]:
    """A JSON list of strings or {"text": str, "inverted": bool} objects (a paraphrases file, a manifest's
    `paraphrases` column), validated; ParaphraseError naming `source` and the item (counted from 1)."""
    if not isinstance(items, list):
        raise ParaphraseError(f"{source}: expected a JSON list of paraphrases, got {json_type(items)}")
    out = []
    for i, item in enumerate(items, 1):
        try:
            out.append(validate_paraphrase(Phrasing.from_json(item)))
        except ParaphraseError as exc:
            raise ParaphraseError(f"{source}: item {i} of {len(items)}: {exc}") from None
    return out


def read_paraphrase_file(path) -> list[Phrasing]:
    """Paraphrases from a file: JSON (a list whose items are strings or {"text": ..., "inverted": ...}) when
    the name ends in .json or the content starts with '[' or '{'; otherwise plain text, one a line, read by
    `parse_paraphrase_text` (so '#' comments and the [inverted] / ! markers work). UTF-8, BOM allowed.
    ParaphraseError, naming the file and the item or line, for a missing file, a folder, undecodable bytes,
    invalid JSON, a bad item (wrong type, no text, non-boolean inverted, unknown keys), a line or item that is
    not a yes/no question, or a file with no paraphrases."""
    try:
        p = Path(path)
    except TypeError:
        raise ParaphraseError(f"a paraphrase file must be a path, got {json_type(path)}") from None
    name = str(p)
    text = read_text_file(p, "paraphrase file", MAX_PARAPHRASE_FILE_BYTES, "a JSON or text file", ParaphraseError)

    head = text.lstrip()
    if p.suffix.lower() == ".json" or (head.startswith(("[", "{")) and not _INVERTED_MARKER.match(head)):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParaphraseError(
                f"paraphrase file {name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                "write a JSON list, or plain text with one paraphrase a line"
            ) from exc
        except RecursionError:
            raise ParaphraseError(f"paraphrase file {name} is nested too deeply to be a paraphrase list") from None
        phrasings = phrasings_from_json(items, source=f"paraphrase file {name}")
    else:
        phrasings = _parse_lines(text, f"paraphrase file {name}: ", "file")
    if not phrasings:
        raise ParaphraseError(f"paraphrase file {name} contains no paraphrases")
    return phrasings
