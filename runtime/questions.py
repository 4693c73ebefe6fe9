"""What Quadrant accepts as a question, and the words questions are compared by.

One rule, used for the question, every paraphrase (the bank's, the rewrites', a user's, a file's, a manifest
row's, a local model's) and the app: anything that reads as a yes/no question is accepted, as clinicians and
datasets write them. Refused, with a message that names the problem and shows a fix:

- a wh-question in any spelling ("What is the diagnosis?", "What's the ETT position?", "Where's the NG
  tube?", "Whats the diagnosis"), also as a second clause ("Is there an effusion, and how large is it?"),
  after a preposition ("Is the effusion on which side?") or inside a request ("Can you tell me what lines
  are present?");
- an either/or or multiple-choice question: alternatives joined by "or", "vs" or "/" ("Is it pneumonia or
  atelectasis?", "Left or right effusion?", "Is the effusion small, moderate or large?", "AP/PA film?"); the
  message names the separate yes/no questions to ask. "Yes or no: ...", "... or not?" and an "or" under
  "any" or "no" ("Any effusion or pneumothorax?") are yes/no questions and stay accepted;
- an instruction or a request for a report ("Describe the findings.", "Can you summarize this film?"), a
  work-up order among them ("r/o PTX", "Rule out pneumothorax?", "Eval for PNA?");
- more than one sentence: two questions in one ("Is there an effusion? Is it large?", "Effusion? Pneumothorax?"),
  or a sentence of context or a remark beside the question ("Post-op day 1. Any pneumothorax?"); a closing
  courtesy or yes/no tag ("... Thanks.", "..., please?", "... Yes/no") is no sentence, and a full stop in an
  abbreviation, a number or an initial ("approx. 5 cm", "2.5 cm", "the R. arm"), or an ellipsis, ends none;
- markup, code, a formula or a URL ("<img src=x>?", "alert(1)?", "CTR = 0.6?", "https://...");
- empty text, text with no words or no question in it ("Yes or no?"), text over MAX_QUESTION_CHARS,
  text on several lines;
- a statement: no final question mark ("?", or another script's: "？", "؟", Greek ";") and no auxiliary to
  start it ("There is a pleural effusion.").

Accepted, for example: "Effusion?", "Signs of consolidation?", "Pleural effusion present?", "Based on this
film, is there an effusion?", "Yes or no: is there a pneumothorax?", "Q: effusion?", "Would you say there is
cardiomegaly?", "Could this be pneumonia?", "Do you see a nodule?", "isn't there a pneumothorax",
"is there a pleural effusion" (the "?" may be left out after an auxiliary), "Tell me whether there is an
effusion." (an instruction that embeds a yes/no question), "?PTX" (a request form's query).

A leading frame is a clause before "," or ":" that starts with a frame word ("Based on", "Looking at", "In",
"Yes or no", "Q", "Please answer", "I'm just wondering", an adverb such as "Clinically"); the rule judges what
follows it.

Refusals of the question itself (`validate_question`, `validate_paraphrase`) end with a fix that fits it: the
bank's question for the finding it names ("Where's the effusion?" -> 'Is there a pleural effusion?'), a
position question for a device ("What's the ETT position?" -> 'Is the endotracheal tube in a satisfactory
position?'), the separate yes/no questions of an either/or one. Whether a question is in English is decided
where paraphrases are written (`quadrant.language`), since phrasings of the user's own make any language
usable.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .errors import ParaphraseError, QuestionError

MAX_QUESTION_CHARS = 300
EXAMPLE = "ask e.g. 'Is there a pleural effusion?'"
#: the question mark as other scripts write it: full-width (Chinese, Japanese), Arabic, Greek (U+037E, which
#: Greek keyboards and Unicode normalisation write as ";", so a ";" ends a question in Greek text), Ethiopic
QUESTION_MARKS = ("?", "\uff1f", "\u061f", "\u037e", "\u1367", "\ufe56")
_GREEK = re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]")

AUXILIARIES = frozenset(
    "is are was were am does do did can could has have had will would should may might must shall".split()
)
NEGATIVE_AUXILIARIES = frozenset(
    "isn't aren't wasn't weren't doesn't don't didn't can't cannot couldn't hasn't haven't hadn't won't "
    "wouldn't shouldn't mightn't mustn't".split()
)
WH_WORDS = frozenset("what where which how why who whom whose when".split())
#: wh-words as typed without the apostrophe of a contraction ("whats the diagnosis")
_WH_RUN_ON = {"whats": "what", "wheres": "where", "hows": "how", "whos": "who", "whys": "why", "whens": "when",
              "whatre": "what", "howre": "how", "wheres'": "where"}
# wh-words that start a second question after a clause break; which/who/when also open relative clauses
_SECOND_WH = ("what", "what's", "whats", "where", "where's", "wheres", "how", "how's", "hows", "why", "why's")
#: words that may lead a question without a comma and change nothing ("And where is the tube?")
_LEADING_CONJUNCTIONS = frozenset("and so but also then now ok okay well".split())
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
    quick true note radiology i i'm im i’m wondering curious hi hello hey sorry taking
    """.split()
)
_FILLER = frozenset("yes no or q question ok okay answer please a an the".split())
#: a trailing "yes or no?" / "(yes/no)" / "y/n" tag, which asks for the answer's form, not a second thing
YES_NO_TAG = re.compile(
    r"[\s,:;.?!\-]*\(?\s*(?:please\s+)?(?:answer\s+)?(?:with\s+|only\s+)*['\"]?(?:yes['\"]?\s*(?:or|/)\s*['\"]?no|y/n)"
    r"['\"]?(?:\s+only)?\s*\)?\s*[?.!]*$",
    re.I,
)
#: a closing courtesy ("..., thanks.", "Thank you!", "Please answer.", "..., please?"): says nothing about the
#: finding, and is left out of the question's rewrites as a closing yes/no tag is (`without_closing`)
_COURTESY = re.compile(
    r"[\s,;:.?!\-]*\b(?:thanks?(?:\s+you)?(?:\s+(?:so\s+much|very\s+much|a\s+lot))?(?:\s+in\s+advance)?|thx"
    r"|cheers|much\s+appreciated|please\s+answer|answer\s+please|please)\s*[.!?]*$",
    re.I,
)
#: a request form's query, a question mark before the finding ("?PTX", "? pneumothorax"): asks "PTX?"
_QUERY = re.compile(r"^\?+\s*(?P<rest>[^?\s].*?)\s*\?*$", re.S)
#: a work-up order written as a question ("r/o PTX?", "Rule out pneumothorax?", "Eval for PNA?"): an instruction
_WORK_UP = re.compile(r"^(?P<verb>r\s*/\s*o|rule\s+out|eval)\b", re.I)
#: where a sentence ends inside a text: "?" (any script's), "!", ";", or "." (`_sentences` skips abbreviations)
_SENTENCE_END = re.compile(r"(?P<mark>[.?!;\uff1f\u061f]+)\s+(?=\S)")
#: words whose full stop ends no sentence: "approx. 5 cm", "e.g.", "vs.", "Dr.", "pt."
_ABBREVIATIONS = frozenset("approx e.g i.e vs cf dr pt no nr st etc ca fig ref resp prev hx sx dx".split())
_OR_NOT_TAG = re.compile(r",?\s*\bor\s+(?:not|no)\s*[?.!]*$", re.I)
_AN_LETTERS = set("aefhilmnorsx")  # initialisms read letter by letter: "an NG tube", "an ET tube", "an MRI"

_FIRST_WORD = re.compile(r"[^\W\d_][\w'\u2019]*")  # letters of any alphabet: "¿Hay ...?" starts with "hay"
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
_WH_ALTERNATION = "what|where|which|how|why|who|whom|whose|when"
# a wh-word after a preposition ("on which side") or inside a request ("tell me what ..."): not a yes/no question
_PREPOSITION_WH = re.compile(r"\b(?:in|on|at|of|from|to|with|by|for)\s+(?P<wh>which|what|whom|whose)\b", re.I)
_EMBEDDED_WH = re.compile(
    r"\b(?:tell|show|know|say|explain|wonder|wondering|ask|identify|determine|indicate|specify|describe|list)"
    r"\s+(?:me\s+|us\s+)?(?:exactly\s+)?(?P<wh>" + _WH_ALTERNATION + r")(?:'s|\u2019s|s)?\b",
    re.I,
)
# what may never be in a question: markup, a link, code, a formula
_MARKUP = re.compile(r"<\s*/?\s*[a-z!?][^>]*>|&(?:[a-z]+|#\d+|#x[0-9a-f]+);|\[[^\]]*\]\([^)]*\)|\{\{|\{%", re.I)
_URL = re.compile(
    r"\b[a-z][a-z0-9+.-]*://\S*|\bwww\.\S+|\b(?:javascript|data|file|mailto|vbscript):\S*"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|gov|edu|info|html?|php)\b\S*",
    re.I,
)
_CODE = re.compile(
    r"`|\$\{|\$\(|[{}]|==|!=|&&|\|\||=>|\b[A-Za-z_]\w*\((?:[^()\s]*[0-9'\"=,][^()\s]*)?\)"
    r"|\bimport\s+\w+|\bdef\s+\w+\s*\(|\bselect\s+\*|\bdrop\s+table\b|\bunion\s+select\b|\bfunction\s*\(",
    re.I,
)
_FORMULA = re.compile(r"=|\^|\\[a-z]+|\$[^$]+\$|[\u221a\u2211\u222b\u00b1]", re.I)
# alternatives: "A or B", "A vs B", "A/B" (not "and/or", "yes/no", nor clinical shorthand such as s/p, w/o, b/l)
_ALTERNATIVE = re.compile(r"\s*,?\s+or\s+|\s+(?:versus|vs\.?)\s+|(?<=[A-Za-z]{2})/(?=[A-Za-z]{2})", re.I)
_NOT_ALTERNATIVES = re.compile(r"\band/or\b|\byes/no\b|\bwhether\s+or\s+not\b|\bno\s+or\s+yes\b", re.I)
# an "or" inside these asks about any of the alternatives, which is a yes/no question
_INCLUSIVE = re.compile(r"\b(?:any|anything|no|not|without|free\s+of|neither|nor|such\s+as|other)\b", re.I)
_ARTICLES = ("a", "an", "the")


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
    """Lowercase words, letters of any alphabet: punctuation and hyphens split ("X-ray" -> x ray), "n't" ->
    not."""
    t = text.lower().replace("\u2019", "'")
    t = re.sub(r"\bcan't\b", "can not", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = t.replace("n't", " not")
    return tuple(re.findall(r"[^\W_]+", t))


def key(text: str) -> str:
    """Case- and punctuation-insensitive identity of a wording."""
    return " ".join(tokens(text))


def first_word(text: str) -> str | None:
    match = _FIRST_WORD.search(text)
    return match.group(0).lower().replace("\u2019", "'") if match else None


def wh_word(word: str | None) -> str | None:
    """The wh-word a typed word is, in any spelling ("what's", "what’s", "whats", "WHERE"), else None."""
    if not word:
        return None
    word = word.lower().replace("\u2019", "'")
    base = word.split("'", 1)[0]
    if base in WH_WORDS:
        return base
    return _WH_RUN_ON.get(word)


def fix_articles(text: str) -> str:
    """"a"/"an" before each word as it is read: "an effusion", "a pleural effusion", "an NG tube"."""
    def choose(m: re.Match) -> str:
        article, word = m.group(1), m.group(2)
        if len(word) > 1 and word[:2].isupper():
            an = word[0].lower() in _AN_LETTERS
        else:
            w = word.lower()
            an = w[0] in "aeio" or (w[0] == "u" and not re.match(r"u(?:ni|se|su|ri|ro)", w))
        wanted = "an" if an else "a"
        return (wanted.capitalize() if article[0].isupper() else wanted) + " " + word

    return re.sub(r"\b([Aa]n?) ([A-Za-z][\w-]*)", choose, text)


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
def question_problem(text: Any, noun: str = "the question", *, suggest: bool = False) -> str | None:
    """Why `text` (already stripped) is not a usable yes/no question, or None. See the module docstring.
    `suggest`: end a refusal with a fix fitted to the text (the bank's question for the finding it names),
    else with a general example; off while the bank itself is being checked, which the fix would need."""
    if not isinstance(text, str):
        return f"{noun} must be text, got {json_type(text)}"
    if not text:
        return f"{noun} is empty: {EXAMPLE}"
    if len(text) > MAX_QUESTION_CHARS:
        return f"{noun} is {len(text)} characters long, over the limit of {MAX_QUESTION_CHARS}: shorten it"
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        return f"{noun} contains a line break or control character: write it on one line"
    foreign = _foreign_content(text, noun)
    if foreign:
        return foreign
    if first_word(text) is None:
        return f"{noun} has no words: {EXAMPLE}"
    lead = "must be answerable with yes or no"
    body = unqueried(strip_frames(text))
    if not body or set(tokens(body)) <= _FILLER:
        return f"{noun} has no question in it, only a frame: {EXAMPLE}"
    word = first_word(body)
    if word == "please":
        body = re.sub(r"^\W*please\W*", "", body, flags=re.I)
        word = first_word(body) or "please"
    if word in _LEADING_CONJUNCTIONS and wh_word(first_word(body[_FIRST_WORD.search(body).end():])):
        body = body[_FIRST_WORD.search(body).end():].strip()  # "And where's the tube?"
        word = first_word(body)
    example = _fitting_example(text) if suggest else EXAMPLE
    after = body[_FIRST_WORD.search(body).end():].strip() if word != "please" else ""
    wh = wh_word(word)
    if wh:
        return f"{noun} {lead} (got a '{wh}' question): {example}"
    order = _WORK_UP.match(body)
    if order or (word in INSTRUCTIONS and not _EMBEDDED.match(after)):
        named = " ".join(order.group("verb").lower().split()) if order else word
        return f"{noun} {lead} (got an instruction, '{named}'): {example}, or 'Is there any abnormality?'"
    request = _REQUEST.match(body)
    if request:
        return f"{noun} {lead} (got a request for a report, '{request.group('verb').lower()}'): {example}"
    embedded = _EMBEDDED_WH.search(body) or _PREPOSITION_WH.search(body)
    if embedded:
        return f"{noun} {lead} (got a '{wh_word(embedded.group('wh'))}' question inside it): {example}"
    second = _SECOND_QUESTION.search(body)
    if second:
        yes_no = body[: second.start()].rstrip(" ,;") + "?"
        return (f"{noun} {lead} (it also asks a '{wh_word(second.group('wh'))}' question): ask the yes/no part "
                f"on its own, e.g. {clip(yes_no)!r}")
    extra = _SECOND_INSTRUCTION.search(body)
    if extra:
        return (f"{noun} {lead} (it also gives an instruction, '{extra.group('verb').lower()}'): ask the "
                f"yes/no part on its own, e.g. {clip(body[: extra.start() + 1])!r}")
    choices = alternatives(body, suggest=suggest)
    if choices:
        named = " and ".join(repr(clip(c)) for c in choices[:3]) + (" ..." if len(choices) > 3 else "")
        return f"{noun} {lead} (got an either/or question): ask one yes/no question for each, e.g. {named}"
    plain = without_closing(body)
    several = _several_sentences(plain, noun)
    if several:
        return several
    if _ends_as_question(plain) or word in AUXILIARIES or word in NEGATIVE_AUXILIARIES:
        return None
    if word in ("any", "whether") or word in INSTRUCTIONS:  # "Any effusion", "Tell me whether ..."
        return None
    fixed = text.rstrip(" .!;") + "?"
    return f"{noun} {lead} (got a statement): end it with '?', e.g. {clip(fixed)!r}, or {EXAMPLE}"


def _ends_as_question(text: str) -> bool:
    """Whether `text` ends in a question mark of any script (`QUESTION_MARKS`), a Greek one written ";" too."""
    end = text.rstrip()[-1:]
    return end in QUESTION_MARKS or (end == ";" and bool(_GREEK.search(text)))


def _sentences(text: str) -> list[str]:
    """`text` cut where a sentence ends inside it: after "?", "!", ";" or a full stop followed by more words. A
    full stop after an abbreviation ("approx. 5 cm", "e.g.") or a single letter ("the R. arm"), or an ellipsis,
    ends none."""
    parts, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        if _ends_sentence(text, end):
            parts.append(text[start : end.end()].strip())
            start = end.end()
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _ends_sentence(text: str, end: re.Match) -> bool:
    mark = end.group("mark")
    if set(mark) != {"."}:
        return True
    before = text[: end.start()].split()[-1:]
    word = before[0].lower().lstrip("(") if before else ""
    return len(mark) == 1 and word not in _ABBREVIATIONS and not (len(word) == 1 and word.isalpha())


def unqueried(text: str) -> str:
    """A request form's query asked as a question ("?PTX" -> "PTX?"); other text as it is."""
    query = _QUERY.match(text.strip())
    return query.group("rest") + "?" if query else text


def without_closing(text: str) -> str:
    """`text` without a closing yes/no tag or courtesy ("..., yes or no?", "Thanks!"), in either order, keeping
    the question mark that ended the question before them ("Hiatal hernia? Yes/no" -> "Hiatal hernia?");
    `text` itself where nothing would be left."""
    rest = text.strip()
    for pattern in (_COURTESY, YES_NO_TAG, _COURTESY):
        found = pattern.search(rest)
        if found and found.start() > 0:
            mark = next((ch for ch in found.group(0) if ch in QUESTION_MARKS), "")
            rest = rest[: found.start()].rstrip() + mark
    return rest or text


def _several_sentences(plain: str, noun: str) -> str | None:
    """Why a text of more than one sentence is not one yes/no question, or None. Two questions in one ("Is there
    an effusion? Is it large?") get one answer for both, and a sentence of context or a remark ("Post-op day
    1.", "Patient is febrile.") is not part of what the phrasings can ask again: both came back as word salad
    ("Is a post-op day 1. Any pneumothorax present?"). `plain`: the text without its closing yes/no tag or
    courtesy (`without_closing`), which is no sentence."""
    parts = [part for part in _sentences(plain) if first_word(part)]
    if len(parts) < 2:
        return None
    asked = [part for part in parts if _ends_as_question(part) or first_word(strip_frames(part)) in
             AUXILIARIES | NEGATIVE_AUXILIARIES | {"any"}]
    if not asked:
        return None  # statements only: refused as a statement
    fix = asked[0] if _ends_as_question(asked[0]) else asked[0].rstrip(" .;!") + "?"
    if len(asked) > 1:
        named = " and ".join(repr(clip(part, 40)) for part in asked[:3]) + (" ..." if len(asked) > 3 else "")
        return (f"{noun} must be one yes/no question (got {len(asked)}: {named}): ask each on its own, "
                f"e.g. {clip(fix)!r}")
    other = next(part for part in parts if part is not asked[0])
    return (f"{noun} must be the yes/no question alone (got another sentence, {clip(other, 40)!r}): leave context "
            f"and remarks out, e.g. {clip(fix)!r}")


def _foreign_content(text: str, noun: str) -> str | None:
    """Markup, a link, code or a formula: never part of a clinical question, and never to be echoed into
    paraphrases and rendered prompts. The fix is the text without it, when that is a question."""
    for pattern, what in ((_MARKUP, "markup"), (_URL, "a link"), (_CODE, "code"), (_FORMULA, "a formula")):
        found = pattern.search(text)
        if found:
            plain = re.sub(r"\s+([?.!,:;])", r"\1", " ".join(pattern.sub(" ", text).split()))
            fix = (f"e.g. {clip(plain)!r}" if plain and question_problem(plain, "") is None
                   else EXAMPLE.removeprefix("ask "))
            return (f"{noun} contains {what} ({clip(found.group(0), 30)!r}): write the question in plain words, "
                    f"{fix}")
    return None


def alternatives(body: str, *, suggest: bool = False) -> list[str] | None:
    """The separate yes/no questions of an either/or or multiple-choice question ("Is it pneumonia or
    atelectasis?" -> ["Is it pneumonia?", "Is it atelectasis?"]), or None when `body` (frames already off)
    offers no alternatives. An "or" in a yes/no tag ("..., yes or no?", "... or not?") or under "any" / "no"
    ("Any effusion or pneumothorax?") is not a choice. `suggest`: bank terms mark multi-word alternatives."""
    text = without_closing(body)
    text = _OR_NOT_TAG.sub("", text).strip().rstrip("?.! ")
    text = _NOT_ALTERNATIVES.sub(" ", text)
    found = list(_ALTERNATIVE.finditer(text))
    if not found or _INCLUSIVE.search(text[: found[0].start()]):
        return None
    last = found[-1]
    left, right = text[: found[0].start()], text[last.end():]
    middle = [text[a.end(): b.start()] for a, b in zip(found, found[1:], strict=False)]
    items = [i for i in left.split(",")]
    left, middle = items[0], [i.strip() for i in items[1:]] + middle
    terms = _bank_terms() if suggest else ()
    right_words = right.split()
    if right_words and right_words[0].lower() in _ARTICLES:  # "a pleural effusion or a pneumothorax"
        right_alt, suffix = right.strip(), ""
        left_words = left.split()
        start = max((i for i, w in enumerate(left_words) if w.lower() in _ARTICLES), default=len(left_words) - 1)
    else:
        width = _term_width(right_words, terms, from_start=True)
        right_alt, suffix = " ".join(right_words[:width]), " ".join(right_words[width:])
        left_words = left.split()
        start = len(left_words) - _term_width(left_words, terms, from_start=False)
        if start > 0 and left_words[start - 1].lower() in (*_ARTICLES, "this", "that"):
            start = len(left_words) - 1  # "the heart enlarged or normal": the article binds the noun to the prefix
    prefix, left_alt = " ".join(left_words[:start]), " ".join(left_words[start:])
    out = []
    for choice in [left_alt, *middle, right_alt]:
        question = " ".join(part for part in (prefix, choice, suffix) if part) + "?"
        out.append(fix_articles(question[:1].upper() + question[1:]))
    return out if len(out) > 1 and all(c.strip() for c in [left_alt, right_alt]) else None


def _term_width(words: list[str], terms, *, from_start: bool) -> int:
    """How many words of `words` (at its start, or its end) one alternative takes: a bank term's length where
    one is there ("pulmonary edema or pneumonia"), else one word."""
    lowered = [w.lower().strip(".,") for w in words]
    best = 1
    for term in terms:
        n = len(term)
        if n <= len(lowered) and n > best and tuple(lowered[:n] if from_start else lowered[-n:]) == term:
            best = n
    return min(best, len(words)) if words else 0


def _bank_terms() -> tuple[tuple[str, ...], ...]:
    """The bank's multi-word keywords, as word tuples (imported here: the bank module imports this one)."""
    from .bank import load_bank

    return load_bank().multiword_terms


_FUNCTION_WORDS = AUXILIARIES | WH_WORDS | frozenset("the a an s this that there of my your any".split())
_DEVICE_WORDS = frozenset("tube line catheter wire lead drain port pacemaker pacer picc ett ngt cvc stent clip "
                          "valve device".split())


def _fitting_example(text: str) -> str:
    """A yes/no question in the spirit of `text`, for a refusal's fix: a device's position, the bank's question
    for the finding the text names, else a general example that names no single finding."""
    from .abbreviations import expand
    from .bank import load_bank

    bank = load_bank()
    words = tokens(expand(text))  # "Eval for PNA?": pneumonia's question
    match = bank.match(words)
    device = next((i for i, w in enumerate(words) if w in _DEVICE_WORDS or w[:-1] in _DEVICE_WORDS), None)
    if device is not None and (match is None or bank.findings[match.finding].device):
        if match is not None and bank.findings[match.finding].term:
            thing = re.sub(r"^(?:a|an)\s+", "the ", bank.findings[match.finding].term)
        elif words[device] not in _DEVICE_WORDS:  # "what lines and tubes ...": which devices, one at a time
            return "ask about one device at a time, e.g. 'Is there an endotracheal tube?'"
        else:
            before = words[device - 1] if device and words[device - 1] not in _FUNCTION_WORDS else None
            thing = "the " + " ".join(w for w in (before, words[device]) if w)
        return f"ask e.g. 'Is {thing} in a satisfactory position?'"
    if match is not None:
        return f"ask e.g. {bank.questions[match.finding]!r}"
    return "ask e.g. 'Is there consolidation?' or 'Is this chest X-ray normal?' (one finding at a time)"


def validate_question(question: str) -> str:
    """The question stripped, or QuestionError naming the problem and a fix (`question_problem`)."""
    text = question.strip() if isinstance(question, str) else question
    problem = question_problem(text, "the question", suggest=True)
    if problem:
        raise QuestionError(problem)
    return text


def validate_paraphrase(p: Phrasing) -> Phrasing:
    """The phrasing with its text stripped, or ParaphraseError under the same rule as `validate_question`."""
    if not isinstance(p, Phrasing):
        raise ParaphraseError(f"a paraphrase must be a Phrasing, got {json_type(p)}")
    text = p.text.strip()
    problem = question_problem(text, f"the paraphrase {clip(text)!r}" if text else "the paraphrase", suggest=True)
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
    reviewing examining upon say think agree true opinion your me tell whether if just wondering curious m im
    """.split()
)
