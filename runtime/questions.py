"""What Quadrant accepts as a question, and the words questions are compared by.

One rule, used for the question, every paraphrase (the bank's, the rewrites', a user's, a file's, a manifest
row's, a local model's) and the app: anything that reads as a yes/no question is accepted, as clinicians and
datasets write them. Refused, with a message that names the problem and shows a fix:

- a wh-question ("What is the diagnosis?", "Where is the effusion?"), also as a second clause
  ("Is there an effusion, and how large is it?");
- an instruction or a request for a report ("Describe the findings.", "Can you summarize this film?");
- empty text, text with no words or no question in it ("Yes or no?"), text over MAX_QUESTION_CHARS,
  text on several lines;
- a statement: no final "?" and no auxiliary to start it ("There is a pleural effusion.").

Accepted, for example: "Effusion?", "Signs of consolidation?", "Pleural effusion present?", "Based on this
film, is there an effusion?", "Yes or no: is there a pneumothorax?", "Q: effusion?", "Would you say there is
cardiomegaly?", "Could this be pneumonia?", "Do you see a nodule?", "isn't there a pneumothorax",
"is there a pleural effusion" (the "?" may be left out after an auxiliary), "Tell me whether there is an
effusion." (an instruction that embeds a yes/no question).

A leading frame is a clause before "," or ":" that starts with a frame word ("Based on", "Looking at", "In",
"Yes or no", "Q", "Please answer", an adverb such as "Clinically"); the rule judges what follows it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .errors import ParaphraseError, QuestionError

MAX_QUESTION_CHARS = 300
EXAMPLE = "ask e.g. 'Is there a pleural effusion?'"

AUXILIARIES = frozenset(
    "is are was were am does do did can could has have had will would should may might must shall".split()
)
NEGATIVE_AUXILIARIES = frozenset(
    "isn't aren't wasn't weren't doesn't don't didn't can't cannot couldn't hasn't haven't hadn't won't "
    "wouldn't shouldn't mightn't mustn't".split()
)
WH_WORDS = frozenset("what where which how why who whom whose when".split())
# wh-words that start a second question after a clause break; which/who/when also open relative clauses
_SECOND_WH = ("what", "where", "how", "why")
INSTRUCTIONS = frozenset(
    """
    describe list explain name identify tell give summarize summarise report find show locate provide
    characterize characterise compare interpret evaluate assess determine count measure write generate
    outline draft create produce classify grade estimate calculate segment annotate mark highlight discuss
    detail enumerate elaborate state indicate specify rate rank check decide judge confirm answer say
    """.split()
)
# after "can/could/would/will you": these ask for a report, not a yes/no answer
_REPORT_VERBS = (
    "describe list write summarize summarise compare generate explain outline draft report interpret "
    "characterize characterise discuss detail enumerate elaborate give provide create produce"
).split()
FRAME_LEADS = frozenset(
    """
    based looking in on from judging given according considering regarding at upon with for after viewing
    examining reviewing seeing q question yes answer please now so ok okay well doctor also then as by just
    quick true note radiology
    """.split()
)
_FILLER = frozenset("yes no or q question ok okay answer please a an the".split())

_FIRST_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019]*")
_FRAME = re.compile(r"^\s*(?P<frame>[^,:;?.!]{1,80}?)\s*[,:]\s*(?P<rest>\S.*)$", re.S)
# a leading sentence that only asks for a yes/no answer: "Answer with yes or no. Is there ...?"
_ANSWER_FRAME = re.compile(
    r"^\s*(?:please\s+)?answer\s+(?:only\s+|with\s+|using\s+)*['\"]?yes['\"]?\s*(?:or|/)\s*['\"]?no['\"]?"
    r"(?:\s+only)?\s*[.:,;!]\s*(?P<rest>\S.*)$",
    re.I | re.S,
)
_EMBEDDED = re.compile(r"^(?:me\s+|us\s+)?(?:whether|if)\b", re.I)
_REQUEST = re.compile(
    r"^(?:can|could|would|will)\s+you\s+(?:please\s+)?(?P<verb>" + "|".join(_REPORT_VERBS) + r")\b", re.I
)
_SECOND_QUESTION = re.compile(
    r"(?:[,;?!]|\b(?:and|or|but)\b)\s*(?:if\s+so,?\s*)?(?P<wh>" + "|".join(_SECOND_WH) + r")\b", re.I
)
_SECOND_INSTRUCTION = re.compile(r"[.?!;]\s+(?:please\s+)?(?P<verb>" + "|".join(_REPORT_VERBS) + r")\b", re.I)


# ------------------------------------------------------------------------------------------ the phrasing
SOURCES = ("question", "bank", "rewrite", "frame", "model", "user", "file")


@dataclass(frozen=True)
class Phrasing:
    """One wording of the question. `inverted`: its yes means the finding is ABSENT ("Can effusion be ruled
    out?"), so its answer is negated before it is compared with prompt 0's. `source`: where it came from
    (SOURCES: prompt 0 is "question"; "bank", "rewrite", "frame" and "model" are Quadrant's own; "user" and
    "file" a person's); provenance, so it is not part of a phrasing's identity (equality ignores it)."""

    text: str
    inverted: bool = False
    source: str = field(default="user", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ParaphraseError(f"a paraphrase must be text, got {json_type(self.text)}")
        if not isinstance(self.inverted, bool):
            raise ParaphraseError(
                f"'inverted' must be true or false, got {json_type(self.inverted)} {self.inverted!r}"
            )
        if self.source not in SOURCES:
            raise ParaphraseError(f"unknown paraphrase source {self.source!r}; known: {', '.join(SOURCES)}")

    def to_json(self) -> dict:
        return {"text": self.text, "inverted": self.inverted, "source": self.source}

    @classmethod
    def from_json(cls, item: Any, source: str = "file") -> "Phrasing":
        """Read what `to_json` writes, or a bare string; `source` when the item names none. Not validated as a
        question: see `validate_paraphrase`."""
        if isinstance(item, str):
            return cls(item, source=source)
        if isinstance(item, dict):
            unknown = sorted(str(key) for key in item if key not in ("text", "inverted", "source"))
            if unknown:
                raise ParaphraseError(
                    f"unknown key(s) {', '.join(repr(k) for k in unknown)}: "
                    "an object may only have 'text', 'inverted' and 'source'"
                )
            if "text" not in item:
                raise ParaphraseError("the object has no 'text': write {\"text\": \"Is there ...?\"}")
            if not isinstance(item["text"], str):
                raise ParaphraseError(f"'text' must be a string, got {json_type(item['text'])}")
            return cls(item["text"], item.get("inverted", False), item.get("source", source))  # __post_init__ checks them
        raise ParaphraseError(
            f"expected a string or an object with 'text' (and optionally 'inverted'), got {json_type(item)}"
        )


def json_type(value: Any) -> str:
    """How a JSON reader would name the type of `value`, for messages."""
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


def clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ------------------------------------------------------------------------------------------------ words
def tokens(text: str) -> tuple[str, ...]:
    """Lowercase words: punctuation and hyphens split ("X-ray" -> x ray), "n't" -> not."""
    t = text.lower().replace("\u2019", "'")
    t = re.sub(r"\bcan't\b", "can not", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = t.replace("n't", " not")
    return tuple(re.findall(r"[a-z0-9]+", t))


def key(text: str) -> str:
    """Case- and punctuation-insensitive identity of a wording."""
    return " ".join(tokens(text))


def first_word(text: str) -> str | None:
    match = _FIRST_WORD.search(text)
    return match.group(0).lower().replace("\u2019", "'") if match else None


def strip_frames(text: str, keep=None) -> str:
    """`text` without its leading frames ("Based on this film, ", "Yes or no: ", "Q: "); with `keep`, a
    predicate on a frame's text, the first frame it holds for stays (so a frame with content, "In the left
    lung, ...", can be kept where its words matter)."""
    rest = text.strip()
    for _ in range(4):
        answer = _ANSWER_FRAME.match(rest)
        if answer:
            rest = answer.group("rest").strip()
            continue
        m = _FRAME.match(rest)
        if not m:
            break
        frame = m.group("frame")
        lead = first_word(frame)
        if lead is None or len(frame.split()) > 10:
            break
        if not (lead in FRAME_LEADS or (lead.endswith("ly") and len(frame.split()) == 1)):
            break
        if keep is not None and keep(frame):
            break
        rest = m.group("rest").strip()
    return rest


# ------------------------------------------------------------------------------------------------ the rule
def question_problem(text: Any, noun: str = "the question") -> str | None:
    """Why `text` (already stripped) is not a usable yes/no question, or None. See the module docstring."""
    if not isinstance(text, str):
        return f"{noun} must be text, got {json_type(text)}"
    if not text:
        return f"{noun} is empty: {EXAMPLE}"
    if len(text) > MAX_QUESTION_CHARS:
        return f"{noun} is {len(text)} characters long, over the limit of {MAX_QUESTION_CHARS}: shorten it"
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        return f"{noun} contains a line break or control character: write it on one line"
    if first_word(text) is None:
        return f"{noun} has no words: {EXAMPLE}"
    lead = "must be answerable with yes or no"
    body = strip_frames(text)
    if not body or set(tokens(body)) <= _FILLER:
        return f"{noun} has no question in it, only a frame: {EXAMPLE}"
    word = first_word(body)
    if word == "please":
        body = re.sub(r"^\W*please\W*", "", body, flags=re.I)
        word = first_word(body) or "please"
    after = body[_FIRST_WORD.search(body).end():].strip() if word != "please" else ""
    if word in WH_WORDS:
        return f"{noun} {lead} (got a '{word}' question): {EXAMPLE}"
    if word in INSTRUCTIONS and not _EMBEDDED.match(after):
        return f"{noun} {lead} (got an instruction, '{word}'): {EXAMPLE}, or 'Is there any abnormality?'"
    request = _REQUEST.match(body)
    if request:
        return (f"{noun} {lead} (got a request for a report, '{request.group('verb').lower()}'): "
                f"{EXAMPLE}")
    second = _SECOND_QUESTION.search(body)
    if second:
        yes_no = body[: second.start()].rstrip(" ,;") + "?"
        return (f"{noun} {lead} (it also asks a '{second.group('wh').lower()}' question): ask the yes/no part "
                f"on its own, e.g. {clip(yes_no)!r}")
    extra = _SECOND_INSTRUCTION.search(body)
    if extra:
        return (f"{noun} {lead} (it also gives an instruction, '{extra.group('verb').lower()}'): ask the "
                f"yes/no part on its own, e.g. {clip(body[: extra.start() + 1])!r}")
    if body.rstrip().endswith("?") or word in AUXILIARIES or word in NEGATIVE_AUXILIARIES:
        return None
    if word in ("any", "whether") or word in INSTRUCTIONS:  # "Any effusion", "Tell me whether ..."
        return None
    fixed = text.rstrip(" .!") + "?"
    return f"{noun} {lead} (got a statement): end it with '?', e.g. {clip(fixed)!r}, or {EXAMPLE}"


def validate_question(question: str) -> str:
    """The question stripped, or QuestionError naming the problem and a fix (`question_problem`)."""
    text = question.strip() if isinstance(question, str) else question
    problem = question_problem(text, "the question")
    if problem:
        raise QuestionError(problem)
    return text


def validate_paraphrase(p: Phrasing) -> Phrasing:
    """The phrasing with its text stripped, or ParaphraseError under the same rule as `validate_question`."""
    if not isinstance(p, Phrasing):
        raise ParaphraseError(f"a paraphrase must be a Phrasing, got {json_type(p)}")
    text = p.text.strip()
    problem = question_problem(text, f"the paraphrase {clip(text)!r}" if text else "the paraphrase")
    if problem:
        raise ParaphraseError(problem)
    return p if text == p.text else Phrasing(text, p.inverted, p.source)


# Words any question may carry without changing what it asks (frames, image nouns, auxiliaries, articles).
GENERIC_WORDS = frozenset(
    """
    is are was were does do did can could has have had will would should may might must shall any some
    there here a an the this that these those of on in at for to with by from it its you we i s
    evidence sign signs present presence seen see visible visualized visualised identified identify
    detected detect detectable noted show shows shown showing demonstrate demonstrates demonstrated
    depict depicts depicted appear appears image images picture radiograph radiographs radiography
    radiographic radiologic radiological imaging film films x ray rays xray cxr chest study exam
    examination scan view frontal pa ap patient patients finding findings
    yes or q question answer please based looking judging given according considering regarding viewing
    reviewing examining upon say think agree true opinion your me tell whether if
    """.split()
)
