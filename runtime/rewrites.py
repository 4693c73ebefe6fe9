"""Rule-based rewrites of a yes/no question that keep its meaning: shapes, templates, synonyms and frames.

None of these needs to understand the finding. A question is first reduced to its core: content-free frames
("Based on this film, ", "Yes or no: ") and opinion frames ("Would you say there is ...") taken off, a
trailing "yes or no?" tag dropped, a declarative turned back into a question. Then:

- `subject`: for the shapes "Is there X?", "Are there X?", "Is X present?", "Does the patient have X?",
  "Any X?" and shorthand ("Effusion?", "Signs of consolidation?", "Pleural effusion present?"), the noun
  phrase X, qualifiers and all, and whether it takes a plural verb;
- `templates`: X asked again in other words ("Is X present?", "Does this radiograph show X?" ...), the verb
  agreeing with X; a long X with a prepositional tail only goes where it ends the question;
- `frames`: the whole question behind a frame ("Based on this radiograph, ...", "Yes or no: ..."), which any
  question takes, whatever it asks;
- `substitute`: a finding's words replaced by a synonym, articles (a/an) and number kept in step.
"""

from __future__ import annotations

import re

from .abbreviations import expand
from .questions import (
    AUXILIARIES,
    GENERIC_WORDS,
    NEGATIVE_AUXILIARIES,
    first_word,
    fix_articles,
    strip_frames,
    tokens,
    unqueried,
    without_closing,
)

_IMAGE_NOUNS = r"(?:chest\s+)?(?:image|images|radiograph|x-?ray|xray|film|study|scan|cxr|picture|exam|examination)"
_SEEN = r"(?:present|seen|visible|noted|identified|evident|appreciated|demonstrated|shown)"
_SHAPES = (
    (re.compile(r"^(?:does|do)\s+(?:the|this)\s+patient\s+have\s+(?P<x>.+)$", re.I), None),
    (re.compile(r"^is\s+there\s+(?P<x>.+)$", re.I), False),
    (re.compile(r"^are\s+there\s+(?P<x>.+)$", re.I), True),
    (re.compile(rf"^is\s+(?P<x>.+?)\s+{_SEEN}$", re.I), False),
    (re.compile(rf"^are\s+(?P<x>.+?)\s+{_SEEN}$", re.I), True),
    (re.compile(r"^(?P<x>any\s+.+)$", re.I), None),
)
_SHORTHAND_SEEN = re.compile(rf"^(?P<x>.+?)\s+{_SEEN}$", re.I)
_TAIL_PLACE = re.compile(rf"\s+(?:on|in|at)\s+(?:this|the)\s+{_IMAGE_NOUNS}$", re.I)
_TAIL_SEEN = re.compile(rf"\s+{_SEEN}$", re.I)
_HEAD_EVIDENCE = re.compile(r"^(?:any\s+)?(?:radiographic\s+)?(?:evidence|signs?)\s+of\s+", re.I)
_TRAILING_FRAME = re.compile(
    rf",\s*(?:based\s+on|looking\s+at|judging\s+by|according\s+to|considering|in|on|from)\s+(?:this|the)\s+"
    rf"{_IMAGE_NOUNS}\s*([?.!]*)$",
    re.I,
)
_OPINION = re.compile(
    r"^(?:(?:would|do|did|can|could|will)\s+you\s+(?:say|think|agree|conclude)|is\s+it\s+(?:true|the\s+case|correct)"
    r"|would\s+you\s+agree|(?:can|could)\s+you\s+tell(?:\s+me)?|tell\s+me|i\s+wonder|please\s+(?:tell|say)(?:\s+me)?"
    r"|(?:determine|indicate|state|say|confirm|check)\s+(?:for\s+me\s+)?)"
    r"\s*(?:that|whether|if)?\s+(?P<rest>.+)$",
    re.I,
)
_DECLARATIVE = re.compile(r"^(?P<subject>.+?)\s+(?P<verb>is|are)\s+(?P<rest>.+)$", re.I)
_NOT_NOUN_PHRASE = AUXILIARIES | NEGATIVE_AUXILIARIES | {"there", "whether", "if", "no", "not"}
PREDICATE_WORDS = frozenset(
    "clear normal abnormal midline intact absent stable unchanged sharp large small wide well ok okay "
    "satisfactory appropriate adequate correct good acceptable ideal optimal unremarkable".split()
)
PREPOSITIONS = frozenset(
    "in on of at with within along over under behind near from since than compared versus vs to into "
    "above below beside across through involving".split()
)
_SINGULAR_S = ("ss", "us", "is", "xs", "ics")
_IRREGULAR_PLURALS = frozenset("hila bullae pleurae bronchi vertebrae foci emboli calculi apices metastases data".split())
#: singular heads that take an article: devices and countable findings ("a small left effusion")
_COUNT_HEADS = frozenset(
    "tube line catheter wire lead drain port pacemaker pacer stent clip valve device nodule mass effusion "
    "pneumothorax fracture lesion opacity granuloma hernia cavity abscess cyst bulla infiltrate".split()
)
#: heads of a device's name: shorthand about where one is asks about its position, not its presence
_DEVICE_HEADS = frozenset("tube line catheter wire lead drain port pacemaker pacer stent clip valve device tip".split())
_DETERMINERS = frozenset("a an the any no some this that these those each every either".split())
# Words that may come right before a finding's name without making it another finding.
SAFE_MODIFIERS = GENERIC_WORDS | frozenset(
    """
    left right bilateral unilateral small large moderate mild severe tiny trace massive huge minimal new old
    acute chronic subtle focal diffuse patchy multifocal multiple residual persistent increasing decreasing
    worsening improving improved worsened unchanged stable resolving recurrent possible probable suspected
    definite obvious significant apparent visible lobar segmental basal apical upper lower middle both
    sided no not
    """.split()
)


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def lower_first(text: str) -> str:
    """Lowercase the first letter unless the first word is an initialism ("ET tube") or "I" ("I'm")."""
    word = text.split(" ", 1)[0]
    if word == "I" or re.match(r"I['\u2019]", word) or (len(word) > 1 and word[1].isupper()):
        return text
    return text[:1].lower() + text[1:]


def _as_question(declarative: str) -> str | None:
    """"there is an effusion" -> "Is there an effusion?"; "the heart is enlarged" -> "Is the heart enlarged?"."""
    d = declarative.strip().rstrip("?.! ")
    m = _DECLARATIVE.match(d)
    if not m or len(m.group("subject").split()) > 6:
        return None
    return f"{_capitalize(m.group('verb').lower())} {lower_first(m.group('subject'))} {m.group('rest')}?"


def _content_free(frame: str) -> bool:
    words = tokens(frame)
    if len(words) == 1 and words[0].endswith("ly"):  # "Clinically, ..."
        return True
    return set(words) <= GENERIC_WORDS | {"no"}  # "Yes or no: ..."


def core_question(text: str) -> str:
    """The question without what does not change its meaning: content-free leading frames, opinion frames, a
    trailing yes/no tag; a declarative question ("There is an effusion?") asked as one; ends in "?". A frame
    with content ("In the left lung, ...") stays in front. Abbreviations are written out ("Consolidation RLL?"
    -> "Consolidation in the right lower lobe?", see `quadrant.abbreviations`)."""
    lead, body = split_lead(strip_frames(expand(text), keep=lambda frame: not _content_free(frame)))
    body = without_closing(unqueried(body))
    body = _TRAILING_FRAME.sub(r"\1", body)
    opinion = _OPINION.match(body)
    if opinion:
        asked = _as_question(opinion.group("rest"))
        rest = opinion.group("rest").rstrip("?.! ")
        if asked:
            body = asked
        elif first_word(rest) in AUXILIARIES | NEGATIVE_AUXILIARIES:
            body = rest
    elif first_word(body) == "there":
        body = _as_question(body) or body
    body = body.rstrip(" .!?") + "?"
    return _capitalize(lead + lower_first(body)) if lead else _capitalize(body)


def split_lead(core: str) -> tuple[str, str]:
    """(a leading frame with content, such as "In the left lung, ", or "", the rest)."""
    body = strip_frames(core)
    return core[: len(core) - len(body)], body


def guess_plural(x: str) -> bool:
    """Whether the noun phrase X takes a plural verb, from its head (the last word before a preposition)."""
    head = []
    for word in x.split():
        if word.lower() in PREPOSITIONS:
            break
        head.append(word)
    if any(w.lower() in ("and",) for w in head):
        return True
    last = head[-1] if head else ""
    if last.isupper():  # COPD, ARDS, ETT: initialisms are singular
        return False
    last = last.lower()
    return last in _IRREGULAR_PLURALS or (last.endswith("s") and not last.endswith(_SINGULAR_S))


def _clean_subject(x: str) -> tuple[str, bool]:
    """X without a trailing "on this image" / "seen" and a leading "evidence of"; whether it was so led."""
    for _ in range(3):
        x = _TAIL_SEEN.sub("", _TAIL_PLACE.sub("", x)).strip()
    stripped = _HEAD_EVIDENCE.sub("", x).strip()
    return stripped, stripped != x


def subject(core: str) -> tuple[str, bool] | None:
    """(X, plural) for the shapes the templates serve, else None. `core` as `core_question` gives it."""
    q = " ".join(core.split()).rstrip("?.! ")
    initial = False  # whether X starts the question, so that a capital may be the sentence's, not the word's
    for pattern, plural in _SHAPES:
        m = pattern.match(q)
        if m:
            x, led = _clean_subject(m.group("x").strip())
            initial = m.start("x") == 0
            break
    else:
        word = first_word(q)
        if word is None or set(tokens(q)) & _NOT_NOUN_PHRASE or "," in q or len(q.split()) > 8:
            return None
        seen = _SHORTHAND_SEEN.match(q)
        x, led = _clean_subject(seen.group("x") if seen else q)
        last = x.split()[-1].lower()
        if not led and not seen and (re.search(r"(?:ed|en|ly)$", last) or last in PREDICATE_WORDS):
            return None  # "Heart enlarged?", "Lungs clear?": a predicate, not a noun phrase
        if _names_device(x) and _has_tail(x):
            return None  # "ETT 4 cm above the carina?": where a device is, not whether there is one
        plural, initial = None, True
        x = lower_first(x)
        if _head(x) in _COUNT_HEADS and first_word(x) not in _DETERMINERS:
            x = fix_articles(f"a {x}")  # "Small left effusion?" asks about "a small left effusion"
    if not x or x.lower() in ("any", "there") or first_word(x) in _NOT_NOUN_PHRASE - {"no"}:
        return None
    if plural is None or led or (plural is False and first_word(x) not in _DETERMINERS):
        plural = guess_plural(x)  # "Is there bilateral infiltrates?", as typed in haste, is asked "Are ..."
    # mid-sentence capitals are the word's own: "Is there Kerley B lines?" keeps its eponym
    return lower_first(x) if initial and x[:1].isupper() and not x[1:2].isupper() else x, plural


def _words_before_tail(x: str) -> list[str]:
    words = []
    for word in x.lower().split():
        if word in PREPOSITIONS:
            break
        words.append(word)
    return words


def _head(x: str) -> str:
    """The head noun of a noun phrase: its last word before a preposition."""
    words = _words_before_tail(x)
    return words[-1] if words else ""


def _names_device(x: str) -> bool:
    return any(w in _DEVICE_HEADS or w[:-1] in _DEVICE_HEADS for w in _words_before_tail(x))


def position_question(core: str) -> str | None:
    """Shorthand that says where a device is, asked in full: "ETT 4 cm above the carina?" -> "Is the
    endotracheal tube 4 cm above the carina?", "Lines and tubes in satisfactory position?" -> "Are the lines
    and tubes in satisfactory position?"; else None."""
    lead, body = split_lead(core)
    q = " ".join(body.split()).rstrip("?.! ")
    if not q or first_word(q) in _NOT_NOUN_PHRASE | {"any"} or "," in q:
        return None
    if not (_names_device(q) and _has_tail(q)):
        return None
    x = lower_first(q)
    if first_word(x) in _DETERMINERS:
        x = x.split(" ", 1)[1]
    asked = f"{'Are' if guess_plural(x) else 'Is'} the {x}?"
    return lead + lower_first(asked) if lead else asked


def _has_tail(x: str) -> bool:
    """Whether X has a prepositional or clausal tail, which reads badly in the middle of a question."""
    words = [w.lower() for w in x.split()[1:]]
    return any(w in PREPOSITIONS or w in ("that", "which", "who", "or", "and") for w in words)


_ORDER = ("present", "show", "evidence", "see_on", "seen", "demonstrate", "visible", "study", "signs", "identified",
          "there", "you_see")  # the bank's top-up order, kept since the demo was measured with it
_TAILED_ORDER = ("there", "show", "evidence", "you_see", "demonstrate", "study", "signs")


def templates(x: str, plural: bool) -> list[str]:
    """X asked in other words; the verb agrees with X. A tailed X only where it ends the question."""
    be = "Are" if plural else "Is"
    made = {
        "present": f"{be} {x} present?",
        "show": f"Does this radiograph show {x}?",
        "evidence": f"Is there evidence of {x}?",
        "see_on": f"Can you see {x} on this image?",
        "seen": f"{be} {x} seen?",
        "demonstrate": f"Does the image demonstrate {x}?",
        "visible": f"{be} {x} visible on this study?",
        "study": f"Does this study show {x}?",
        "signs": f"Are there signs of {x}?",
        "identified": f"{be} {x} identified on this radiograph?",
        "there": f"{be} there {x}?",
        "you_see": f"Can you see {x}?",
    }
    order = _TAILED_ORDER if _has_tail(x) else _ORDER
    redundant = {"evidence", "signs"} if _HEAD_EVIDENCE.match(x) else set()  # not "evidence of signs of COPD"
    return [made[name] for name in order if name not in redundant]


_FRAMES = (
    "Based on this radiograph", "Looking at this image", "Yes or no", "On this chest X-ray", "In this image",
    "From this film", "Judging by this study", "Please answer yes or no", "According to this radiograph",
    "Considering this image",
)


def frames(core: str) -> list[str]:
    """The question behind each frame: "Based on this radiograph, is ...?" for a question that starts with an
    auxiliary, "Based on this radiograph: Heart enlarged?" for shorthand."""
    lead, body = split_lead(core)
    word = first_word(body)
    chosen = [f for f in _FRAMES if not lead or first_word(f) != first_word(lead)]  # not "Based on ..., based on"
    if word in AUXILIARIES or word in NEGATIVE_AUXILIARIES:
        body = lower_first(core)
        out = [f"{frame}{':' if frame.endswith('no') else ','} {body}" for frame in chosen]
        return out + [f"{core.rstrip('?')}, based on this image?"]
    return [f"{frame}: {lower_first(core)}" for frame in chosen]


# ------------------------------------------------------------------------------------------------ synonyms
def pluralize(noun_phrase: str) -> str:
    words = noun_phrase.split()
    last = words[-1]
    if last.isupper():
        plural = last + "s"
    elif re.search(r"(?:s|x|z|ch|sh)$", last):
        plural = last + "es"
    elif re.search(r"[^aeiou]y$", last):
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return " ".join(words[:-1] + [plural])


def substitute(text: str, words: tuple[str, ...], synonyms: tuple[str, ...], sentence: bool = True) -> list[str]:
    """`text` (a `sentence`, or a noun phrase) with the finding's words (`words`, its tokens as the question
    has them) replaced by each other synonym, number and articles kept in step, when those words are
    themselves one of the synonyms; else []. A one-word name right after a word that could make it another
    finding ("pericardial effusion", "subcutaneous emphysema") is left alone: only articles, laterality,
    size, severity, extent and time may come before it."""
    plain = [" ".join(tokens(s)) for s in synonyms]
    own = " ".join(words)
    singular = next((c for c in (own, own[:-1], own[:-2]) if c in plain), None)
    m = re.search(r"\b" + r"[\s\-]+".join(re.escape(w) for w in words) + r"\b", text, re.I)
    if singular is None or m is None:
        return []
    before = tokens(text[: m.start()])
    if len(words) == 1 and before and before[-1] not in SAFE_MODIFIERS:
        return []
    out = []
    for synonym, plain_synonym in zip(synonyms, plain, strict=True):
        if plain_synonym == singular:
            continue
        if singular != own:  # the question has the plural
            if " of " in synonym:
                continue
            synonym = pluralize(synonym)
        if m.start() == 0 and sentence:
            synonym = _capitalize(synonym)
        out.append(fix_articles(text[: m.start()] + synonym + text[m.end() :]))
    return out
