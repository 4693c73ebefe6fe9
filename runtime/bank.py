"""The paraphrase bank: chest X-ray findings, the words that name them, and how people ask about them.

The bank is data, `data/paraphrase_bank.json` inside the package; `--paraphrase-bank FILE` extends or
replaces it with a file of the same format (an institution's own wording, another language)::

    {
      "format": "quadrant-paraphrase-bank", "version": 1,
      "extends": true,                 # true (default): add to / override the built-in bank; false: replace it
      "findings": {
        "pleural effusion": {          # canonical name, lowercase
          "source": "CheXpert",        # where the label comes from (free text)
          "term": "a pleural effusion",  # the finding as a noun phrase for the rule-based rewrites, or null
          "plural": false,             # whether `term` takes a plural verb ("Are support devices present?")
          "device": false,             # optional: a device (a tube, a line, a pacemaker), asked about by position
          "keywords": ["pleural effusion", "effusion", "pleural fluid"],
          "absence_keywords": [],      # optional: phrases naming the opposite ("abnormality" for "no finding")
          "synonyms": ["pleural effusion", "effusion"],  # optional: interchangeable names, written singular
          "phrasings": ["Is there a pleural effusion?", "..."],    # yes = present; the first is canonical
          "inverted": ["Can a pleural effusion be ruled out?"]      # yes = absent
        }
      }
    }

Keywords match whole words, case- and punctuation-insensitive, a final "s"/"es" allowed; where several
findings match, the longest keyword wins ("calcified nodule" beats "nodule"). Synonyms replace each other
inside a question whose own words name the finding with one of them, the question's qualifiers kept ("a small
left pleural effusion" -> "a small left effusion"), so they must mean exactly the same thing: never a wider or
narrower finding. An entry in an extending file replaces the built-in entry of the same name whole. Every
phrasing must pass Quadrant's question rule; a malformed file is refused with a message naming the entry.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from .errors import ParaphraseError
from .questions import Phrasing, json_type, question_problem, tokens
from .textfile import read_text_file

FORMAT = "quadrant-paraphrase-bank"
MAX_BANK_FILE_BYTES = 5_000_000
_ENTRY_KEYS = {
    "source": (str,), "term": (str, type(None)), "plural": (bool,), "device": (bool,), "keywords": (list,),
    "absence_keywords": (list,), "synonyms": (list,), "phrasings": (list,), "inverted": (list,),
}
_TYPE_NAMES = {"source": "a string", "term": "a string or null", "plural": "a boolean", "device": "a boolean",
               "keywords": "a list",
               "absence_keywords": "a list", "synonyms": "a list", "phrasings": "a list", "inverted": "a list"}
_REQUIRED = ("keywords", "phrasings")


@dataclass(frozen=True)
class Finding:
    """One compiled bank entry."""

    name: str
    order: int
    source: str
    term: str | None
    plural: bool
    synonyms: tuple[str, ...]
    vocabulary: frozenset
    phrasings: tuple[Phrasing, ...]
    keywords: tuple[tuple[str, ...], ...] = ()  # as word tuples, absence keywords left out
    device: bool = False


@dataclass(frozen=True)
class Match:
    """Where a bank keyword sits in a question's tokens."""

    finding: str
    start: int
    end: int
    absence_keyword: bool


class Bank:
    """Findings compiled for matching. Built by `load_bank`; `fingerprint` identifies its content."""

    def __init__(self, entries: dict[str, dict], origin: str):
        self.origin = origin
        self.entries = entries
        self.fingerprint = "sha256:" + hashlib.sha256(
            json.dumps(entries, sort_keys=True, ensure_ascii=False).encode("utf-8")
        ).hexdigest()
        self.findings: dict[str, Finding] = {}
        self._by_first: dict[str, list] = {}
        for order, (name, raw) in enumerate(entries.items()):
            self.findings[name] = self._compile(name, order, raw)

    def _compile(self, name: str, order: int, raw: dict) -> Finding:
        vocabulary: set[str] = set()
        keywords = [(tokens(k), False) for k in raw["keywords"]]
        keywords += [(tokens(k), True) for k in raw.get("absence_keywords", ())]
        for words, absence in keywords:
            if not absence:
                vocabulary.update(words)
            first = words[0]
            heads = (first, first + "s", first + "es") if len(words) == 1 else (first,)
            for head in heads:
                self._by_first.setdefault(head, []).append((words, name, order, absence))
        for text in raw["phrasings"]:
            vocabulary.update(tokens(text))
        for text in (raw.get("term") or "", *raw.get("synonyms", ())):
            vocabulary.update(tokens(text))
        phrasings = tuple(Phrasing(t, source="bank") for t in raw["phrasings"])
        phrasings += tuple(Phrasing(t, True, source="bank") for t in raw.get("inverted", ()))
        return Finding(name, order, raw.get("source", ""), raw.get("term"), bool(raw.get("plural", False)),
                       tuple(raw.get("synonyms", ())), frozenset(vocabulary), phrasings,
                       tuple(words for words, absence in keywords if not absence), bool(raw.get("device", False)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.findings)

    @property
    def questions(self) -> dict[str, str]:
        """The canonical question per finding (its first phrasing), e.g. for the app's list of findings."""
        return {name: f.phrasings[0].text for name, f in self.findings.items()}

    @functools.cached_property
    def multiword_terms(self) -> tuple[tuple[str, ...], ...]:
        """Every keyword and synonym of two words or more, as word tuples: where an alternative of an
        either/or question ends ("pulmonary edema or pneumonia")."""
        terms = {words for f in self.findings.values() for words in f.keywords if len(words) > 1}
        terms |= {tokens(s) for f in self.findings.values() for s in f.synonyms if len(tokens(s)) > 1}
        return tuple(sorted(terms))

    def matches(self, words: Sequence[str]) -> list[Match]:
        """Every keyword occurrence in `words` (tokens), in no particular order."""
        out = []
        for i, token in enumerate(words):
            for kw, name, _, absence in self._by_first.get(token, ()):
                n = len(kw)
                if i + n > len(words) or tuple(words[i : i + n - 1]) != kw[:-1]:
                    continue
                if words[i + n - 1] in (kw[-1], kw[-1] + "s", kw[-1] + "es"):
                    out.append(Match(name, i, i + n, absence))
        return out

    def match(self, words: Sequence[str]) -> Match | None:
        """The most specific keyword: the longest, then the earliest, then the first in the bank."""
        def rank(m: Match):
            return (len(" ".join(words[m.start : m.end])), -m.start, -self.findings[m.finding].order)

        found = self.matches(words)
        return max(found, key=rank) if found else None

    def named(self, words: Sequence[str]) -> set[str]:
        """Every finding a question names: each keyword occurrence not inside a longer one."""
        found = self.matches(words)
        return {
            m.finding for m in found
            if not any(o.start <= m.start and o.end >= m.end and o.end - o.start > m.end - m.start for o in found)
        }


# ------------------------------------------------------------------------------------------------ loading
def _problem(where: str, problem: str) -> ParaphraseError:
    return ParaphraseError(f"{where}: {problem}")


def _check_entry(where: str, name: Any, raw: Any) -> dict:
    """The entry as given, or ParaphraseError naming the entry, the key and the item."""
    if not isinstance(name, str) or not name.strip() or name != " ".join(name.lower().split()):
        raise _problem(where, f"finding name {name!r} must be lowercase words, e.g. 'pleural effusion'")
    at = f"{where}: entry {name!r}"
    if not isinstance(raw, dict):
        raise _problem(at, f"expected an object, got {json_type(raw)}")
    unknown = sorted(set(raw) - set(_ENTRY_KEYS))
    if unknown:
        raise _problem(at, f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(_ENTRY_KEYS)}")
    for k in _REQUIRED:
        if not raw.get(k):
            raise _problem(at, f"'{k}' is missing or empty: give a list of strings")
    for k, types in _ENTRY_KEYS.items():
        if k in raw and not isinstance(raw[k], types):
            raise _problem(at, f"'{k}' must be {_TYPE_NAMES[k]}, got {json_type(raw[k])}")
    for k in ("keywords", "absence_keywords", "synonyms", "phrasings", "inverted"):
        for i, item in enumerate(raw.get(k, ()), 1):
            if not isinstance(item, str) or not tokens(item):
                raise _problem(at, f"'{k}' item {i} must be a string with words, got {item!r}")
            if k in ("phrasings", "inverted"):
                problem = question_problem(item.strip(), f"the phrasing {item!r}")
                if problem:
                    raise _problem(at, f"'{k}' item {i}: {problem}")
    return raw


def _read_json(path: Path) -> Any:
    name = str(path)
    text = read_text_file(path, "paraphrase bank", MAX_BANK_FILE_BYTES, "a JSON file", ParaphraseError)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParaphraseError(
            f"paraphrase bank {name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from exc


def read_bank_document(data: Any, where: str) -> tuple[dict[str, dict], bool]:
    """(entries, extends) from a parsed bank document, validated; ParaphraseError naming `where` and the entry."""
    if not isinstance(data, dict):
        raise _problem(where, f"expected a JSON object with 'findings', got {json_type(data)}")
    unknown = sorted(set(data) - {"format", "version", "extends", "findings", "description"})
    if unknown:
        raise _problem(where, f"unknown top-level key(s) {', '.join(map(repr, unknown))}")
    if data.get("format", FORMAT) != FORMAT:
        raise _problem(where, f"'format' must be {FORMAT!r}, got {data.get('format')!r}")
    if data.get("version", 1) != 1:
        raise _problem(where, f"'version' {data.get('version')!r} is not one this Quadrant reads (1)")
    extends = data.get("extends", True)
    if not isinstance(extends, bool):
        raise _problem(where, f"'extends' must be true or false, got {json_type(extends)}")
    findings = data.get("findings")
    if not isinstance(findings, dict) or not findings:
        raise _problem(where, "'findings' must be a non-empty object of finding name -> entry")
    return {name: _check_entry(where, name, raw) for name, raw in findings.items()}, extends


@functools.lru_cache(maxsize=1)
def _builtin_entries() -> dict[str, dict]:
    text = resources.files("quadrant").joinpath("data/paraphrase_bank.json").read_text(encoding="utf-8")
    entries, _ = read_bank_document(json.loads(text), "the built-in paraphrase bank")
    return entries


@functools.lru_cache(maxsize=8)
def _load(path: str | None) -> Bank:
    builtin = _builtin_entries()
    if path is None:
        return Bank(builtin, "built-in")
    p = Path(path)
    entries, extends = read_bank_document(_read_json(p), f"paraphrase bank {p}")
    merged = {**builtin, **entries} if extends else entries
    return Bank(merged, f"built-in + {p}" if extends else str(p))


def load_bank(path: str | Path | None = None) -> Bank:
    """The built-in bank, or the built-in one extended (or replaced, per its "extends") by the file at
    `path`. Loaded once per path."""
    return _load(None if path is None else str(path))
