"""Quadrant's exceptions: one tree, so that every entry point can turn bad input into one clear line.

    QuadrantError
    ├── InputError (ValueError)             bad input from the user: exit 2 on the command line
    │   ├── StudyError                      an image or DICOM file that cannot be used
    │   │   ├── StudyNotFoundError (FileNotFoundError)
    │   │   └── StudyScopeError             a readable study Quadrant cannot judge (not a chest radiograph)
    │   ├── QuestionError                   empty, over-long, not a yes/no question, or not English
    │   ├── ParaphraseError                 a paraphrase list or file that cannot be used
    │   ├── ManifestError                   a dataset manifest that cannot be used
    │   └── OptionError                     an option value that makes no sense (unknown preset, rule, ...)
    ├── ModelError                          a model that cannot be loaded or scored
    │   ├── ModelNotFoundError (FileNotFoundError)
    │   └── UnsupportedModelError           a family or tokenizer Quadrant cannot score
    └── MissingDependencyError (ImportError) an optional package is needed: the message names the extra

Messages say what happened, to what, and what to do. Foreign exceptions are translated where they enter
(`raise StudyError(...) from exc`), never further up.
"""

from __future__ import annotations

import os
import traceback


class QuadrantError(Exception):
    """Base of every error Quadrant raises on purpose."""


class InputError(QuadrantError, ValueError):
    """The user's input cannot be used; the command line exits 2."""


class StudyError(InputError):
    """An image or DICOM file that cannot be read or is out of bounds."""


class StudyNotFoundError(StudyError, FileNotFoundError):
    """The study path does not exist or is not a file."""


class StudyScopeError(StudyError):
    """A readable study that is not what Quadrant judges: not a chest radiograph (another modality or body
    part, several frames and none chosen, colour, tiny). The message says what the study is."""


class QuestionError(InputError):
    """The question is empty, too long, not a yes/no question, or (with no phrasings of the user's own) not
    in English."""


class ParaphraseError(InputError):
    """A paraphrase list or file is malformed."""


class ManifestError(InputError):
    """A dataset manifest is malformed."""


class OptionError(InputError):
    """An option's value is not one Quadrant knows."""


class ModelError(QuadrantError):
    """A model that cannot be loaded or scored."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """Neither a local directory, a preset, nor a cached hub id."""


class UnsupportedModelError(ModelError):
    """A model family or tokenizer that Quadrant cannot score (for example: no single-token yes/no)."""


class MissingDependencyError(QuadrantError, ImportError):
    """An optional dependency is missing; the message names the pip extra that provides it."""


def unexpected(exc: BaseException) -> str:
    """An unexpected error for a log line or a page: its type and the line that raised it, never its text.
    A library's message quotes the value it choked on, and in a study's header that value can be a birth date
    or a name; a type and a line are enough to reproduce it on test data. QUADRANT_DEBUG=1 adds the text, for
    an engineer working on such data."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        path = frames[-1].filename.replace("\\", "/")
        short = path.split("site-packages/")[-1] if "site-packages/" in path else "/".join(path.split("/")[-2:])
        where = f" at {short}:{frames[-1].lineno}"
    text = f": {one_line(exc)}" if os.environ.get("QUADRANT_DEBUG") else ""
    return f"{type(exc).__name__}{where}{text}"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """A foreign exception's text squeezed onto one short line, for the reason part of a message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require(module: str, extra: str):
    """Import an optional dependency at the edge where it is needed, naming the extra when it is absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed: pip install 'quadrant[{extra}]'"
        ) from exc
