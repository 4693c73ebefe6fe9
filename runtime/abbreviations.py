"""Standard chest radiograph abbreviations, written out in Quadrant's own paraphrases.

"Consolidation RLL?" is a question every radiologist reads at once; "Is consolidation RLL present?" is not
English, and a model may read "RLL" as anything. So the rule-based paraphrases ask the question with its
abbreviations written out ("Is there consolidation in the right lower lobe?"), while prompt 0 stays as the
user typed it. The list is data (`data/abbreviations.json`): each abbreviation has one expansion and a kind:

- `place` (RLL, SVC, IJ): after a noun, "in the right lower lobe"; after a preposition, "the right lower
  lobe"; before a noun or after "the", as it stands ("RLL consolidation" -> "right lower lobe consolidation");
- `thing` (PTX, ETT, NGT, CVC, PICC, fx): replaced as it stands, articles fixed ("an NGT" -> "a nasogastric
  tube"); `absorbs` drops a word the expansion already says ("PICC line");
- `side` (R, L, bilat): only right before another word ("R effusion" -> "right effusion").

Only unambiguous abbreviations are listed (not PE: pulmonary embolism or pleural effusion; not ICD: a drain
or a defibrillator). Two-letter ones that are also words match only in capitals.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources

from .questions import fix_articles

_PREPOSITIONS = frozenset("in at on of within into to from above below near involving through over under".split())
_DETERMINERS = frozenset("the a an this that its".split())


@dataclass(frozen=True)
class Abbreviation:
    short: str
    expansion: str
    kind: str  # place, thing or side
    upper_only: bool
    absorbs: str | None


@functools.lru_cache(maxsize=1)
def abbreviations() -> dict[str, Abbreviation]:
    """The built-in list, by the abbreviation as written in the file."""
    text = resources.files("quadrant").joinpath("data/abbreviations.json").read_text(encoding="utf-8")
    entries = json.loads(text)["abbreviations"]
    return {short: Abbreviation(short, e["expansion"], e["kind"], e.get("case") == "upper", e.get("absorbs"))
            for short, e in entries.items()}


@functools.lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    shorts = sorted(abbreviations(), key=len, reverse=True)
    return re.compile(r"(?<![\w/])(?:" + "|".join(re.escape(s) for s in shorts) + r")(?![\w/])", re.I)


def find(word: str) -> Abbreviation | None:
    """The abbreviation `word` is, matched as the list says (capitals only for two-letter words)."""
    table = abbreviations()
    if word in table:
        return table[word]
    for short, entry in table.items():
        if not entry.upper_only and short.lower() == word.lower():
            return entry
    return None


def expand(text: str) -> str:
    """`text` with every listed abbreviation written out (see the module docstring); unchanged if none."""
    out, last = [], 0
    for m in _pattern().finditer(text):
        entry = find(m.group(0))
        if entry is None:
            continue
        before = text[last: m.start()]
        after = text[m.end():]
        replacement = _written_out(entry, text[: m.start()], after)
        if replacement is None:
            continue
        if entry.absorbs:
            absorbed = re.match(rf"\s+{re.escape(entry.absorbs)}\b", after, re.I)
            if absorbed:
                last = m.end() + absorbed.end()
                out.append(before + replacement)
                continue
        out.append(before + replacement)
        last = m.end()
    if not out:
        return text
    return fix_articles("".join(out) + text[last:])


def _written_out(entry: Abbreviation, before: str, after: str) -> str | None:
    """The expansion in its place, or None to leave the abbreviation as it is."""
    previous = (re.findall(r"[A-Za-z']+", before) or [""])[-1].lower()
    next_word = re.match(r"\s+([A-Za-z][\w-]*)", after)
    if entry.kind == "side":
        return entry.expansion if next_word and next_word.group(1).lower() not in _DETERMINERS else None
    if entry.kind == "thing":
        return entry.expansion
    if previous in _DETERMINERS or next_word:
        return entry.expansion  # "the RLL", "RLL consolidation"
    if previous in _PREPOSITIONS:
        return f"the {entry.expansion}"  # "in RLL"
    return f"in the {entry.expansion}"  # "consolidation RLL"


def vocabulary() -> frozenset[str]:
    """Every abbreviation and every word of an expansion, lower-case: English words Quadrant knows."""
    words = set()
    for short, entry in abbreviations().items():
        words.add(short.lower())
        words.update(entry.expansion.lower().split())
    return frozenset(words)
