"""Questions and paraphrase sets: prompt 0 is the user's yes/no question, then K paraphrases of it.

Paraphrases come from, in order of precedence:

1. the user (``--paraphrase``, ``--paraphrases FILE``, the app's box, a manifest column): used exactly as
   given, after validation;
2. the built-in bank (`quadrant.paraphrase_bank`) when the question names a known finding and asks plainly
   whether it is present;
3. generic templates built from the question's own words when it has the shape "Is there X?",
   "Are there X?", "Is X present?" or "Does the patient have X?";
4. otherwise a `ParaphraseError` that asks for the user's own paraphrases.

A paraphrase set is only useful if every member asks the same thing: a paraphrase that means something else
shows up as a flip and makes a sound model look Fragile. So the bank steps aside when the question is
narrower or the opposite of what the bank asks:

- *narrower*: a question with words outside its finding's vocabulary ("Is there a *left* pleural effusion?",
  "Is there a *rib* fracture?") gets templates that keep those words, or an error if it has no template
  shape;
- *opposite*: a question about absence ("Can effusion be ruled out?", "Is there no pneumothorax?",
  "Is the heart size normal?") gets an error: its paraphrases must come from the user, the ones that ask
  about presence marked ``inverted``.

Everything here is deterministic: the same question and options give the same set, in the same order.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import OptionError, ParaphraseError, QuestionError
from .paraphrase_bank import BANK, FINDING_QUESTIONS

__all__ = [
    "DEFAULT_K",
    "FINDINGS",
    "FINDING_QUESTIONS",
    "MAX_PARAPHRASES",
    "MAX_PARAPHRASE_FILE_BYTES",
    "MAX_QUESTION_CHARS",
    "Phrasing",
    "asks_absence",
    "bank_phrasings",
    "find_finding",
    "paraphrase_set",
    "parse_paraphrase_text",
    "phrasings_from_json",
    "read_paraphrase_file",
    "validate_paraphrase",
    "validate_question",
]

MAX_QUESTION_CHARS = 300
DEFAULT_K = 5
MAX_PARAPHRASES = 64  # one forward pass each, all in one batch: a guard against a runaway list
MAX_PARAPHRASE_FILE_BYTES = 1_000_000

FINDINGS: tuple[str, ...] = tuple(BANK)

_EXAMPLE = "ask e.g. 'Is there a pleural effusion?'"


# ----------------------------------------------------------------------------------------- the phrasing type
@dataclass(frozen=True)
class Phrasing:
    """One wording of the question. `inverted`: its yes means the finding is ABSENT ("Can effusion be ruled
    out?"), so its answer is negated before it is compared with prompt 0's."""

    text: str
    inverted: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ParaphraseError(f"a paraphrase must be text, got {_json_type(self.text)}")
        if not isinstance(self.inverted, bool):
            raise ParaphraseError(
                f"'inverted' must be true or false, got {_json_type(self.inverted)} {self.inverted!r}"
            )

    def to_json(self) -> dict:
        return {"text": self.text, "inverted": self.inverted}

    @classmethod
    def from_json(cls, item: Any) -> "Phrasing":
        """Read what `to_json` writes, or a bare string. Not validated as a question: see
        `validate_paraphrase`."""
        if isinstance(item, str):
            return cls(item)
        if isinstance(item, dict):
            unknown = sorted(str(key) for key in item if key not in ("text", "inverted"))
            if unknown:
                raise ParaphraseError(
                    f"unknown key(s) {', '.join(repr(k) for k in unknown)}: "
                    "an object may only have 'text' and 'inverted'"
                )
            if "text" not in item:
                raise ParaphraseError("the object has no 'text': write {\"text\": \"Is there ...?\"}")
            if not isinstance(item["text"], str):
                raise ParaphraseError(f"'text' must be a string, got {_json_type(item['text'])}")
            inverted = item.get("inverted", False)
            if not isinstance(inverted, bool):
                raise ParaphraseError(f"'inverted' must be true or false, got {_json_type(inverted)} {inverted!r}")
            return cls(item["text"], inverted)
        raise ParaphraseError(
            f"expected a string or an object with 'text' (and optionally 'inverted'), got {_json_type(item)}"
        )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# ------------------------------------------------------------------------------------------------ validation
_YES_NO_STARTERS = frozenset(
    "is are was were does do did can could has have had will would should may might must shall any".split()
)
_NEGATIVE_STARTERS = frozenset(
    "isn't aren't wasn't weren't doesn't don't didn't can't couldn't hasn't haven't hadn't won't wouldn't "
    "shouldn't mightn't mustn't".split()
)
_WH_WORDS = frozenset("what where which how why who whom whose when whether".split())
_INSTRUCTIONS = frozenset(
    "describe list explain name identify tell give summarize summarise report find show locate provide "
    "characterize characterise compare interpret evaluate assess determine please count measure".split()
)
_FIRST_WORD = re.compile(r"[A-Za-z][A-Za-z']*")


def _yes_no_problem(text: Any, noun: str) -> str | None:
    """Why `text` (already stripped) is not a usable yes/no question, or None."""
    if not isinstance(text, str):
        return f"{noun} must be text, got {_json_type(text)}"
    if not text:
        return f"{noun} is empty: {_EXAMPLE}"
    if len(text) > MAX_QUESTION_CHARS:
        return f"{noun} is {len(text)} characters long, over the limit of {MAX_QUESTION_CHARS}: shorten it"
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        return f"{noun} contains a line break or control character: write it on one line"
    match = _FIRST_WORD.search(text)
    if match is None:
        return f"{noun} has no words: {_EXAMPLE}"
    word = match.group(0).lower().replace("\u2019", "'")
    if text[: match.start()].strip(" \"'\u201c\u2018(\u00bf\u00a1") or not (
        word in _YES_NO_STARTERS or word in _NEGATIVE_STARTERS
    ):
        lead = "must be answerable with yes or no"
        if word in _WH_WORDS:
            got = f"got a '{word}' question"
        elif word in _INSTRUCTIONS:
            got = f"got an instruction, '{word}'"
        elif not text.rstrip().endswith("?"):
            got = "got a statement"
        else:
            got = f"it starts with '{match.group(0)}', not with is/are/does/can/any..."
        return f"{noun} {lead} ({got}): {_EXAMPLE}"
    return None


def validate_question(question: str) -> str:
    """The question stripped, or QuestionError: empty, over MAX_QUESTION_CHARS, on several lines, or not a
    yes/no question. A yes/no question starts with an auxiliary or copula (is, are, was, were, does, do, did,
    can, could, has, have, had, will, would, should, may, might, must, shall, or a negative form such as
    "isn't") or with "any"; the final "?" is optional."""
    text = question.strip() if isinstance(question, str) else question
    problem = _yes_no_problem(text, "the question")
    if problem:
        raise QuestionError(problem)
    return text


def validate_paraphrase(p: Phrasing) -> Phrasing:
    """The phrasing with its text stripped, or ParaphraseError under the same rules as `validate_question`."""
    if not isinstance(p, Phrasing):
        raise ParaphraseError(f"a paraphrase must be a Phrasing, got {_json_type(p)}")
    text = p.text.strip()
    problem = _yes_no_problem(text, f"the paraphrase {_clip(text)!r}" if text else "the paraphrase")
    if problem:
        raise ParaphraseError(problem)
    return p if text == p.text else Phrasing(text, p.inverted)


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ------------------------------------------------------------------------------------------- word matching
def _tokens(text: str) -> tuple[str, ...]:
    """Lowercase words: punctuation and hyphens split ("X-ray" -> x ray), "n't" -> not."""
    t = text.lower().replace("\u2019", "'")
    t = re.sub(r"\bcan't\b", "can not", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = t.replace("n't", " not")
    return tuple(re.findall(r"[a-z0-9]+", t))


def _key(text: str) -> str:
    """Case- and punctuation-insensitive identity of a wording."""
    return " ".join(_tokens(text))


# Words any question may carry without changing what it asks.
_GENERIC_WORDS = frozenset(
    """
    is are was were does do did can could has have had will would should may might must shall any some
    there here a an the this that these those of on in at for to with by from it its you we i s
    evidence sign signs present presence seen see visible visualized visualised identified identify
    detected detect detectable noted show shows shown showing demonstrate demonstrates demonstrated
    depict depicts depicted appear appears image images picture radiograph radiographs radiography
    radiographic radiologic radiological imaging film films x ray rays xray cxr chest study exam
    examination scan view frontal pa ap patient patients finding findings
    """.split()
)

# Words and word pairs that turn a question about presence into one about absence.
_ABSENCE_WORDS = frozenset(
    """
    no not without absent absence exclude excluded excluding excludable normal unremarkable negative
    resolved none nothing lack lacks lacking cannot never neither nor sharp preserved intact
    """.split()
)
_ABSENCE_PAIRS = frozenset({("free", "of"), ("clear", "of"), ("rule", "out"), ("ruled", "out"), ("rules", "out")})
_NO_FINDING = "no finding"


@dataclass(frozen=True)
class _Entry:
    name: str
    order: int
    term: str | None
    plural: bool
    vocabulary: frozenset
    phrasings: tuple[Phrasing, ...]


@dataclass(frozen=True)
class _Match:
    finding: str
    start: int
    end: int
    absence_keyword: bool


def _compile():
    entries: dict[str, _Entry] = {}
    by_first: dict[str, list] = {}
    for order, (name, raw) in enumerate(BANK.items()):
        keywords = [(_tokens(k), False) for k in raw["keywords"]]
        keywords += [(_tokens(k), True) for k in raw.get("absence_keywords", ())]
        vocabulary = set()
        for words, absence in keywords:
            if not absence:
                vocabulary.update(words)
            first = words[0]
            heads = (first, first + "s", first + "es") if len(words) == 1 else (first,)
            for head in heads:
                by_first.setdefault(head, []).append((words, name, order, absence))
        for text in raw["phrasings"]:
            vocabulary.update(_tokens(text))
        if raw["term"]:
            vocabulary.update(_tokens(raw["term"]))
        phrasings = tuple(Phrasing(t) for t in raw["phrasings"]) + tuple(Phrasing(t, True) for t in raw["inverted"])
        entries[name] = _Entry(name, order, raw["term"], bool(raw["plural"]), frozenset(vocabulary), phrasings)
    return entries, by_first


_ENTRIES, _KEYWORDS_BY_FIRST = _compile()


def _match(tokens: Sequence[str]) -> _Match | None:
    """The most specific keyword in the question: the longest, then the earliest, then the first in the bank."""
    best, best_rank = None, None
    for i, token in enumerate(tokens):
        for words, name, order, absence in _KEYWORDS_BY_FIRST.get(token, ()):
            n = len(words)
            if i + n > len(tokens) or tuple(tokens[i : i + n - 1]) != words[:-1]:
                continue
            last, want = tokens[i + n - 1], words[-1]
            if last not in (want, want + "s", want + "es"):
                continue
            rank = (len(" ".join(words)), -i, -order)
            if best_rank is None or rank > best_rank:
                best, best_rank = _Match(name, i, i + n, absence), rank
    return best


def find_finding(question: str) -> str | None:
    """The canonical name of the bank finding the question names ("pleural effusion"), else None. Whole words,
    case- and punctuation-insensitive; where several match, the most specific (longest) keyword wins:
    "pleural thickening" over "pleural effusion"'s words, "calcified nodule" over "nodule", "lung nodule"
    over "lung lesion"."""
    if not isinstance(question, str):
        return None
    m = _match(_tokens(question))
    return m.finding if m else None


def _rest(tokens: Sequence[str], m: _Match | None) -> tuple[str, ...]:
    return tuple(tokens) if m is None else tuple(tokens[: m.start]) + tuple(tokens[m.end :])


def _absence_cue(tokens: Sequence[str], finding: str | None = None) -> str | None:
    ignore = {"normal", "unremarkable"} if finding == _NO_FINDING else set()
    for i, token in enumerate(tokens):
        if token in _ABSENCE_WORDS and token not in ignore:
            return token
        if tuple(tokens[i : i + 2]) in _ABSENCE_PAIRS:
            return " ".join(tokens[i : i + 2])
    return None


def asks_absence(question: str) -> bool:
    """Whether the question's yes would mean a finding is absent ("Can effusion be ruled out?", "Is the heart
    size normal?", "Is there no pneumothorax?", "Is there any abnormality?" for "no finding"). A heuristic on
    words; double negatives count as absence. The bank's inverted phrasings all answer True."""
    tokens = _tokens(question) if isinstance(question, str) else ()
    m = _match(tokens)
    if m is not None and m.absence_keyword:
        return True
    return _absence_cue(_rest(tokens, m), m.finding if m else None) is not None


def _qualifiers(tokens: Sequence[str], m: _Match) -> list[str]:
    """Words of the question outside its finding's vocabulary: they narrow or change what the bank asks."""
    vocabulary = _ENTRIES[m.finding].vocabulary
    out = []
    for token in _rest(tokens, m):
        forms = {token, token[:-1] if token.endswith("s") else token, token[:-2] if token.endswith("es") else token}
        if not forms & (_GENERIC_WORDS | vocabulary):
            out.append(token)
    return out


# ------------------------------------------------------------------------------------------------ the bank
def bank_phrasings(finding: str) -> list[Phrasing]:
    """The bank's phrasings for a finding (canonical name, any case): the non-inverted ones first, in bank
    order, then the inverted ones."""
    name = " ".join(finding.lower().split()) if isinstance(finding, str) else finding
    if name not in _ENTRIES:
        raise ParaphraseError(f"unknown finding {finding!r}: the bank knows {', '.join(FINDINGS)}")
    return list(_ENTRIES[name].phrasings)


# ------------------------------------------------------------------------------------------------ templates
def _templates(x: str, plural: bool) -> list[str]:
    be = "Are" if plural else "Is"
    return [
        f"{be} {x} present?",
        f"Does this radiograph show {x}?",
        f"Is there evidence of {x}?",
        f"Can you see {x} on this image?",
        f"{be} {x} seen?",
        f"Does the image demonstrate {x}?",
        f"{be} {x} visible on this study?",
        f"Does this study show {x}?",
        f"Are there signs of {x}?",
        f"{be} {x} identified on this radiograph?",
    ]


_IMAGE_NOUNS = r"(?:chest\s+)?(?:image|images|radiograph|x-?ray|xray|film|study|scan|cxr|picture|exam|examination)"
_SHAPES = (
    (re.compile(r"^(?:does|do)\s+(?:the|this)\s+patient\s+have\s+(?P<x>.+)$", re.I), None, False),
    (re.compile(r"^is\s+there\s+(?P<x>.+)$", re.I), False, False),
    (re.compile(r"^are\s+there\s+(?P<x>.+)$", re.I), True, False),
    (re.compile(r"^is\s+(?P<x>.+?)\s+(?:present|seen|visible|noted|identified)$", re.I), False, True),
    (re.compile(r"^are\s+(?P<x>.+?)\s+(?:present|seen|visible|noted|identified)$", re.I), True, True),
)
_TAIL_PLACE = re.compile(rf"\s+(?:on|in|at)\s+(?:this|the)\s+{_IMAGE_NOUNS}$", re.I)
_TAIL_SEEN = re.compile(r"\s+(?:present|seen|visible|noted|identified)$", re.I)
_HEAD_EVIDENCE = re.compile(r"^(?:any\s+)?(?:evidence|signs?)\s+of\s+", re.I)
_PREPOSITIONS = frozenset("in on of at with within along over under behind near from".split())


def _template_subject(question: str) -> tuple[str, bool] | None:
    """X and whether it is plural, for the question shapes the templates serve, else None."""
    q = " ".join(question.split()).rstrip("?.! ")
    for pattern, plural, at_start in _SHAPES:
        m = pattern.match(q)
        if not m:
            continue
        x = m.group("x").strip()
        for _ in range(3):
            x = _TAIL_SEEN.sub("", _TAIL_PLACE.sub("", x)).strip()
        x = _HEAD_EVIDENCE.sub("", x).strip()
        if not x or x.lower() in ("any", "there"):
            return None
        if at_start and x[0].isupper() and (len(x) == 1 or x[1].islower()):
            x = x[0].lower() + x[1:]
        return x, _guess_plural(x) if plural is None else plural
    return None


def _guess_plural(x: str) -> bool:
    head = []
    for word in x.lower().split():
        if word in _PREPOSITIONS:
            break
        head.append(word)
    last = head[-1] if head else ""
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "xs"))


# ------------------------------------------------------------------------------------------ paraphrase sets
def _ask_for_own(why: str) -> ParaphraseError:
    return ParaphraseError(
        f"{why}: give your own paraphrases (--paraphrase TEXT, repeatable, or --paraphrases FILE; "
        "in the app, the paraphrases box), marking those whose yes means the finding is absent as inverted"
    )


def _pick(question: str, candidates: Sequence[str], k: int) -> list[Phrasing]:
    seen = {_key(question)}
    out: list[Phrasing] = []
    for text in candidates:
        key = _key(text)
        if key in seen or _yes_no_problem(text, "") is not None:
            continue
        seen.add(key)
        out.append(Phrasing(text))
        if len(out) == k:
            break
    return out


def paraphrase_set(question: str, *, k: int = DEFAULT_K, user: Sequence[Phrasing] | None = None) -> list[Phrasing]:
    """[Phrasing(question)] + K paraphrases, deterministic.

    - `user` given and non-empty: exactly those after it (validated, not cut to K; strings are accepted as
      non-inverted phrasings); at most MAX_PARAPHRASES.
    - else, when the question names a bank finding and asks plainly whether it is present: the first K
      non-inverted bank phrasings that differ from the question (case and punctuation ignored), topped up
      from templates on the finding's term when K exceeds them.
    - else, when the question reads "Is there X?", "Are there X?", "Is X present?" or "Does the patient have
      X?": templates on X ("Is X present?", "Does this radiograph show X?", "Is there evidence of X?",
      "Can you see X on this image?", "Is X seen?", ...).
    - else ParaphraseError asking for the user's own paraphrases; also when the question asks about absence
      (see `asks_absence`) and no user paraphrases are given, or fewer than K paraphrases can be built.
    QuestionError for a question `validate_question` refuses; OptionError for a K that is not an integer >= 0.
    """
    q = validate_question(question)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise OptionError(f"the number of paraphrases K must be a whole number >= 0, got {k!r}")
    original = Phrasing(q)

    if user:
        if isinstance(user, (str, Phrasing)):
            user = [user]
        if len(user) > MAX_PARAPHRASES:
            raise ParaphraseError(
                f"{len(user)} paraphrases given, over the limit of {MAX_PARAPHRASES}: give fewer"
            )
        out = [original]
        for i, item in enumerate(user, 1):
            try:
                phrasing = Phrasing.from_json(item) if isinstance(item, (str, dict)) else item
                out.append(validate_paraphrase(phrasing))
            except ParaphraseError as exc:
                raise ParaphraseError(f"paraphrase {i}: {exc}") from None
        return out

    if k == 0:
        return [original]

    tokens = _tokens(q)
    m = _match(tokens)
    qualifiers = _qualifiers(tokens, m) if m else []
    if m is not None:
        cue = _absence_cue(_rest(tokens, m), m.finding)
        if cue or (m.absence_keyword and not qualifiers):
            cue = cue or " ".join(tokens[m.start : m.end])
            if m.finding == _NO_FINDING:
                what = (
                    f"the question asks whether the study is abnormal ('{cue}'), the opposite of the built-in "
                    f"paraphrases for 'no finding', e.g. {FINDING_QUESTIONS[m.finding]!r}"
                )
            else:
                what = (
                    f"the question asks whether {m.finding} is absent ('{cue}'), but the built-in paraphrases "
                    f"ask whether it is present, e.g. {FINDING_QUESTIONS[m.finding]!r}"
                )
            raise _ask_for_own(what)
    if m is not None and not qualifiers:
        entry = _ENTRIES[m.finding]
        candidates = [p.text for p in entry.phrasings if not p.inverted]
        if entry.term:
            candidates += _templates(entry.term, entry.plural)
        out = _pick(q, candidates, k)
        if len(out) < k:
            raise _ask_for_own(f"only {len(out)} built-in paraphrases for {m.finding!r}, fewer than K = {k}")
        return [original] + out

    subject = _template_subject(q)
    if subject is None:
        if m is not None:
            why = (
                f"the question narrows {m.finding!r} with {', '.join(repr(w) for w in qualifiers)}, so the "
                f"built-in paraphrases for {m.finding!r} would ask something else, and it is not of the form "
                "'Is there X?', 'Is X present?' or 'Does the patient have X?' that generic paraphrases need"
            )
        else:
            why = (
                f"no built-in paraphrases for {_clip(q)!r}: it names no finding in the bank and is not of the "
                "form 'Is there X?', 'Is X present?' or 'Does the patient have X?'"
            )
        raise _ask_for_own(why)
    x, plural = subject
    cue = _absence_cue(_tokens(x))
    if cue:
        raise _ask_for_own(
            f"the question asks about an absence ('{cue}'), which generic paraphrases would blur"
        )
    out = _pick(q, _templates(x, plural), k)
    if len(out) < k:
        raise _ask_for_own(f"only {len(out)} generic paraphrases can be built for {_clip(q)!r}, fewer than K = {k}")
    return [original] + out


# ------------------------------------------------------------------------------------------ reading lists
_INVERTED_MARKER = re.compile(r"^\[inverted\]\s*", re.I)


def _parse_lines(text: str, where: str) -> list[Phrasing]:
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
            out.append(validate_paraphrase(Phrasing(line, inverted)))
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
        raise ParaphraseError(f"paraphrases must be text, got {_json_type(text)}")
    return _parse_lines(text, "")


def phrasings_from_json(items: Any, *, source: str = "paraphrases") -> list[Phrasing]:
    """A JSON list of strings or {"text": str, "inverted": bool} objects (a paraphrases file, a manifest's
    `paraphrases` column), validated; ParaphraseError naming `source` and the item (counted from 1)."""
    if not isinstance(items, list):
        raise ParaphraseError(f"{source}: expected a JSON list of paraphrases, got {_json_type(items)}")
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
        raise ParaphraseError(f"a paraphrase file must be a path, got {_json_type(path)}") from None
    name = str(p)
    if not p.exists():
        raise ParaphraseError(f"paraphrase file {name} does not exist: check the path")
    if p.is_dir():
        raise ParaphraseError(f"paraphrase file {name} is a folder, not a file: give a JSON or text file")
    try:
        size = p.stat().st_size
        if size > MAX_PARAPHRASE_FILE_BYTES:
            raise ParaphraseError(
                f"paraphrase file {name} is {size} bytes, over the limit of {MAX_PARAPHRASE_FILE_BYTES}: "
                "is it the right file?"
            )
        data = p.read_bytes()
    except OSError as exc:
        raise ParaphraseError(f"cannot read paraphrase file {name}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParaphraseError(
            f"paraphrase file {name} is not UTF-8 text (undecodable byte at offset {exc.start}): "
            "save it as UTF-8 JSON or plain text"
        ) from exc
    if "\x00" in text:
        raise ParaphraseError(f"paraphrase file {name} is binary, not text: give a JSON or text file")

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
        phrasings = _parse_lines(text, f"paraphrase file {name}: ")
    if not phrasings:
        raise ParaphraseError(f"paraphrase file {name} contains no paraphrases")
    return phrasings
