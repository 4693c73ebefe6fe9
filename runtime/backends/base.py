"""The scoring interface every backend implements (docs/design.md, "Adding a backend").

A backend takes a list of requests and returns one result per request, in order. How it batches is its own
business: requests that share an image object (or name the same picture) are one study, and a fast backend
may run that image once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # loading imports torch; commands that only read results import this interface too
    from ..loading import Loaded, ModelSource, ModelSpec


@dataclass(frozen=True, eq=False)
class LazyPicture:
    """A picture made when a backend reads it, and not before: an evidence map's filled copy of a full-size
    radiograph is a 15 MB copy of the study (and the first one its fill's blur, 70-90 ms), which a backend
    that keeps the copy's reading under its `copy_key` does not need, since the next question's map reads
    nothing. `make` returns the picture's pixels as a (height, width, 3) uint8 array, anew at each call."""

    make: Callable[[], np.ndarray]


@dataclass(frozen=True, eq=False)
class ScoreRequest:
    """One prompt to score: the rendered text (the verdict's `rendered`) and the image it goes with, if any.

    Requests holding the very same image object, or naming the same picture by `study_key`, belong to one study.
    `reuse_key` marks an image that is the same for every study (a content-free reference of one size): a
    backend may compute its prefix once under that key and reuse it in later calls, and keep the margins of
    prompts it has scored with it. `study_key` names a study's picture by its pixels (their hash): a backend
    may keep the picture's prefix under it, so that the next question asked of the same picture (a
    clinician's follow-up, another finding) skips the prefix pass. `copy_key` names a picture asked one
    question at a time but read again and again (an evidence map's filled copy, drawn anew for each question
    about its study): a backend may keep the processor's reading of it under that key, not its prefix.

    The image is a PIL image, or its RGB pixels as an (height, width, 3) uint8 array, which every processor
    takes alike: an evidence map's filled copies are arrays, since a processor copies a PIL image twice before
    it resizes it, and on a full-size radiograph (15 MB a copy, 64 copies) those copies cost more than the
    model; and they come as `LazyPicture`s, made only where a backend reads them (`picture`).
    """

    rendered: str
    image: Image.Image | np.ndarray | LazyPicture | None
    reuse_key: str | None = None
    study_key: str | None = None
    copy_key: str | None = None

    def picture(self) -> Image.Image | np.ndarray | None:
        """The image to read: a lazy one made now."""
        return self.image.make() if isinstance(self.image, LazyPicture) else self.image


@dataclass(frozen=True)
class ScoreResult:
    """The yes-minus-no margin of the next-token logits, and which computation produced it."""

    margin: float
    path: str


class Scorer(ABC):
    """Scores prompts on a loaded model. Construction stores settings; heavy work happens in `load`.

    A backend also says which model sources it runs and how it loads them, so that the backend registry
    chooses once, from the resolved source (`quadrant.backends.choose_backend`).
    """

    name: str = "base"
    #: the backend a source gets when none is asked for, among those that serve it (one per kind of source)
    default: bool = False
    #: what the sources it serves are, for the refusal when another backend is asked to run one
    source_kind: str = "a model"
    #: what a refusal to run a source it does not serve adds: how to make one it does serve
    refusal_hint: str = ""

    @classmethod
    @abstractmethod
    def serves(cls, source: str) -> bool:
        """Whether this backend runs a model from `source` (a resolved local directory or hub id)."""

    @classmethod
    @abstractmethod
    def load(cls, spec: ModelSpec, resolved: ModelSource) -> Loaded:
        """The model at `resolved`, loaded the way this backend computes with it."""

    def prepare(self) -> None:
        """One-time work before the first request (a self-check, a warm-up); kept out of any check's timing."""

    @abstractmethod
    def margins(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """One margin per request, in the requests' order."""

    @abstractmethod
    def generate(self, requests: Sequence[ScoreRequest], max_new_tokens: int = 8) -> list[str]:
        """Greedy continuations, for models whose first token is not the answer (generate-and-parse)."""

    def warm(self, requests: Sequence[ScoreRequest]) -> None:
        """Work that a later call about the same pictures may reuse, done now, while nobody waits (a study's
        prefix, where a backend keeps one). Nothing by default."""


def group_by_image(requests: Sequence[ScoreRequest]) -> dict[int | str | None, list[int]]:
    """Request indices per study: the same image object, or the same picture by `study_key` (a dataset's
    findings asked of one image in a batch, each row loading it afresh, then share one prefix pass);
    text-only requests under the key None."""
    groups: dict[int | str | None, list[int]] = {}
    for index, request in enumerate(requests):
        key = None if request.image is None else (request.study_key or id(request.image))
        groups.setdefault(key, []).append(index)
    return groups
