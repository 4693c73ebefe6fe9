"""Files a command is asked to write, checked before any model work: each in a folder that exists, none a
folder, no file named by two options, and none a file the command reads. `--sr chest.dcm` on the study
`chest.dcm` once replaced the patient's image with its own report; `monitor --plot` on the audit log would
replace the record of every check."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import OptionError


def check_outputs(writes: Mapping[str, str | Path | None],
                  reads: Mapping[str, str | Path | None] | None = None) -> None:
    """An OptionError naming the option and what is wrong with a path of `writes` (option -> path; None: not
    asked). `reads`: option -> a file the same command reads, never to be written over."""
    given = {option: Path(path) for option, path in writes.items() if path}
    for option, path in given.items():
        if not path.parent.is_dir():
            raise OptionError(f"{option} {path}: the folder {path.parent} does not exist")
        if path.is_dir():
            raise OptionError(f"{option} {path}: is a folder; give a file name")
        for read, source in (reads or {}).items():
            if source and _same_file(path, Path(source)):
                raise OptionError(f"{option} {path}: is the file {read} reads; writing there would replace it: "
                                  "give another file name")
    options = list(given)
    for i, first in enumerate(options):
        for second in options[i + 1:]:
            if _same_file(given[first], given[second]):
                raise OptionError(f"{first} and {second} both name {given[first]}: give each its own file")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once links are followed, or one file by two names."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False
