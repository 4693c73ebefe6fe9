"""The fast path: a whole check in two forwards, exact to fp32 rounding, whichever runtime does the forwards.

1. The prefix pass: the image and everything before the question, once per study. The shared prefix is
   the longest common prefix of the tokenized with-image prompts, found on token ids (tokenizing a prefix
   string on its own can merge differently at the boundary); studies whose prefixes have the same length
   share this call, so a dataset batch costs one vision pass per study.
2. The suffix pass, on the prefix's key/values: every phrasing's remaining tokens laid end to end in its
   study's row, under a block mask, plus the text-only prompts, each attending to itself alone
   (`packing.pack_batch`). Positions restart at the prefix for each suffix; a family whose rotary positions
   are not one per token (Qwen's M-RoPE, where text after the image is offset by a rope delta) maps them in
   `packed_position_ids`, and one that flattens images into patches or tiles says which belong to one
   prompt (`prefix_image_inputs`).

Families whose image attention is not causal (PaliGemma's prefix-LM) run one batched full forward instead.
A self-check when the scorer is prepared compares both passes with full forwards and falls back to the
batched path above 1e-4, because attention semantics cannot be seen from outside.

Everything above is the same for every runtime. What a backend supplies is its `ForwardSteps`: the prefix
pass, the packed suffix pass and the full forward (each encoding the image once per study where it runs),
and greedy generation.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from PIL import Image

from ..errors import one_line
from ..families.base import ReadImage
from ..kept import kept
from ..loading import Loaded
from .base import Scorer, ScoreRequest, ScoreResult, group_by_image
from .packing import PackedBatch, Study, pack_batch

log = logging.getLogger(__name__)

#: the self-check's tolerance in float32, where rounding cannot hide a semantic error (measured ~3e-7 apart)
EXACT_TOLERANCE = 1e-4
#: half precision rounds the two paths differently by up to ~1e-2 on real logits; wrong semantics (a mask
#: or a misplaced image) move them by 1e-1 and more
HALF_PRECISION_TOLERANCE = 5e-2
PREFIX = "prefix-shared"
PACKED = "packed"  # a text-only prompt scored inside the suffix pass, attending to itself alone
REUSED = "prefix-reused"  # a content-free reference or a study whose prefix was computed in an earlier call
KEPT = "margin-kept"  # a prompt asked of the same content-free reference, or with no image, before: its margin
BATCHED = "batched"
#: prefixes of content-free reference images kept per model (one per image size where the family resizes
#: dynamically; a fixed-size family needs one per mode)
REUSED_PREFIXES = 8
REUSED_STUDIES = 64  # tokenized reference prompts kept (a few hundred token ids each)
#: studies' prefixes kept per model, for the next question asked of the same picture: the last few studies
#: a clinician (or a few at once) is reading. Each holds the key/values of the image and the template's
#: opening, about 0.3 GB on a 7B model with 576 image tokens.
STUDY_PREFIXES = 4
#: key/values kept in each of the two stores above (studies', references'), whatever their count: a 7B model
#: without grouped-query attention (LLaVA-1.5) holds 0.3 GB a prefix, so the counts alone could keep gigabytes
#: on a workstation GPU beside the weights
KEPT_BYTES = 2**30
KEPT_MARGINS = 1024  # content-free references' and text-only prompts' margins kept (a float per prompt)
#: evidence map copies' readings kept (`ScoreRequest.copy_key`), for the next question's map of the same study:
#: two maps' worth, and at most COPY_READING_BYTES of tensors (a LLaVA-1.5 copy's is 1.4 MB, 87 MB a map; a
#: processor that reads a full-size film at its own size keeps fewer, the most recent)
COPY_READINGS = 2 * 68
COPY_READING_BYTES = 256 * 2**20
#: threads that read a call's new pictures (an evidence map's copies, a batch's studies) through the processor at once
PREPROCESS_WORKERS = min(8, os.cpu_count() or 1)
#: a picture no worker read (`_tokenize_studies`): its reading is made, or found kept, where it is needed
UNREAD = object()


@dataclass
class Prefix:
    """The prefix pass's result: the stacked prefix inputs (token ids, attention, per-token tensors, image
    tensors: what the packed positions are computed from) and the runtime's key/values, one row per study."""

    inputs: dict[str, torch.Tensor]
    cache: object


class ForwardSteps(ABC):
    """The forward computations of the fast path on one runtime. Margins come back as floats in row order.

    - `run_prefix`: encode each study's image once, then run the shared prefixes with past length 0,
      returning their key/values;
    - `run_suffixes`: the packed suffix pass on a prefix's key/values;
    - `run_full`: whole prompts, padded on the right, in one forward (the plain way, and the fallback);
    - `generate`: greedy decoding of one prompt, for the generate-and-parse mode.
    """

    #: the most tokens one prefix pass should hold across its studies, where a larger batch runs slower per
    #: token (None: as many as `max_batch` allows)
    prefix_tokens: int | None = None
    #: whether a short forward gains from running on another thread beside other work (the content-free
    #: reference's suffix pass beside the study's reading and prefix pass): where a call's fixed costs
    #: (launching each operator, waking the thread pool) hide under the other's work, or a core is idle while
    #: the study is read. Off where the runtime's threads fight.
    overlaps: bool = False

    def __init__(self, loaded: Loaded):
        self.loaded = loaded

    def place(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """A processor output where this runtime reads it (device, dtype); as it is by default."""
        return value

    @abstractmethod
    def run_prefix(self, tokens: dict[str, torch.Tensor], images: list[dict[str, torch.Tensor]]) -> Prefix:
        """The shared prefixes `tokens` ([studies, prefix length]), each study's image tensors in `images`."""

    @abstractmethod
    def run_suffixes(self, prefix: Prefix, laid: PackedBatch) -> list[float]:
        """The packed suffix pass on `prefix`'s key/values; one margin per `laid.answer_at`, in its order."""

    @abstractmethod
    def run_full(self, inputs: dict[str, torch.Tensor], one_image: bool) -> list[float]:
        """Whole prompts in one forward, each margin at its row's last real token. `one_image`: every row
        shows the same image (one study), which may then be encoded once for all rows."""

    @abstractmethod
    def generate(self, inputs: dict[str, torch.Tensor], max_new_tokens: int) -> list[int]:
        """Greedy continuation of one prompt (a batch of one), as token ids, stopping at end of sequence."""

    def fork(self, prefix: Prefix) -> Prefix:
        """A copy of a kept prefix that `run_suffixes` may extend in place (the runtime's key/values may grow)."""
        return prefix

    def nbytes(self, prefix: Prefix) -> int:
        """The memory a kept prefix holds (its key/values), for the bound on what is kept; 0 where unknown."""
        return 0


class StepsScorer(Scorer):
    """A scorer on a backend's `ForwardSteps` (`steps_type`): tokenizing the family's way, plain forwards and
    generation; subclasses decide how requests become forwards (`margins`)."""

    steps_type: type[ForwardSteps]

    def __init__(self, loaded: Loaded, max_batch: int = 32):
        self.steps = self.steps_type(loaded)
        self.loaded = loaded
        self.max_batch = max_batch

    def encode(self, rendered: Sequence[str], images) -> dict[str, torch.Tensor]:
        """The family's tokenization, placed where the runtime reads it."""
        encoded = self.loaded.family.encode(self.loaded.processor, rendered, images)
        return {k: self.steps.place(k, v) for k, v in encoded.items()}

    def full_forward_margins(self, rendered: Sequence[str], images) -> list[float]:
        """One padded forward over whole prompts (image included): the plain way every family supports."""
        return self.steps.run_full(self.encode(rendered, images), one_image=False)

    def generate(self, requests: Sequence[ScoreRequest], max_new_tokens: int = 8) -> list[str]:
        tokenizer = self.loaded.processor.tokenizer
        texts = []
        for request in requests:
            inputs = self.encode([request.rendered], None if request.image is None else [request.picture()])
            new_tokens = self.steps.generate(inputs, max_new_tokens)
            texts.append(tokenizer.decode(new_tokens, skip_special_tokens=True).strip())
        return texts


class FastPathScorer(StepsScorer):
    """The two-pass fast path on a backend's `ForwardSteps`."""

    def __init__(self, loaded: Loaded, max_batch: int = 32):
        super().__init__(loaded, max_batch=max_batch)
        self._prefix_ok: bool | None = None  # decided by the self-check in prepare()
        self._reused: OrderedDict[tuple, Prefix] = OrderedDict()  # (image content, prefix ids) -> prefix pass
        self._reused_studies: OrderedDict[tuple, Study] = OrderedDict()  # (reuse key, prompts) -> tokenized
        self._reference_content: OrderedDict[str, str] = OrderedDict()  # reuse key -> its image tensors' hash
        self._reference_splices: OrderedDict[str, tuple] = OrderedDict()  # reuse key -> its reading's `splice`
        self._kept_margins: OrderedDict[tuple, list[float]] = OrderedDict()  # (image content, token ids) -> margins
        self._text_only_margins: OrderedDict[str, float] = OrderedDict()  # rendered prompt -> margin
        self._study_prefixes: OrderedDict[tuple, Prefix] = OrderedDict()  # (study key, prefix ids) -> prefix pass
        self._read_images: OrderedDict[str, ReadImage | None] = OrderedDict()  # study key -> the processor's read
        self._copy_readings: OrderedDict[str, ReadImage | None] = OrderedDict()  # copy key -> the processor's read
        self._readers: ThreadPoolExecutor | None = None  # made at the first call with pictures to read at once
        self._beside: ThreadPoolExecutor | None = None  # runs the references' forwards, where `steps.overlaps`
        self._worker = threading.local()  # each reader thread's processor

    def margins(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = [None] * len(requests)
        groups = group_by_image(requests)
        asked_text_only = groups.pop(None, [])
        text_only = self._text_only_to_score(requests, asked_text_only, results)
        use_prefix = self.prefix_ok()
        chunks = [chunk for indices in groups.values() for chunk in _chunks(indices, self.max_batch)]
        references, own = [], []
        for chunk in chunks:
            (references if use_prefix and requests[chunk[0]].reuse_key is not None else own).append(chunk)
        references_scored = self._score_references(requests, references, results)
        try:
            self._score_studies(requests, self._tokenize_studies(requests, own, use_prefix), text_only, use_prefix,
                                results)
        finally:  # a reference still running must not outlive the call that laid it out
            references_scored()
        self._keep_text_only(requests, asked_text_only, text_only, results)
        return results

    def _score_studies(self, requests: Sequence[ScoreRequest], studies: list[Study], text_only: list[int],
                       use_prefix: bool, results: list[ScoreResult | None]) -> None:
        """Score the studies' prompts into `results`, batched, and the text-only prompts with them."""
        batches = list(self._batches(studies, by_prefix=use_prefix))
        if use_prefix and batches:
            # text-only prompts ride along in the suffix pass, each seeing only itself
            shares = _split(self._tokenize_text_only(requests, text_only), len(batches))
        else:
            shares = [[] for _ in batches]
            for chunk in _chunks(text_only, self.max_batch):
                margins = self.full_forward_margins([requests[i].rendered for i in chunk], None)
                for index, margin in zip(chunk, margins, strict=True):
                    results[index] = ScoreResult(margin=margin, path=BATCHED)
        for batch, share in zip(batches, shares, strict=True):
            if use_prefix:
                margins, path = self._prefix_margins(batch, [ids for _, ids in share])
                paths = [path] * (len(margins) - len(share)) + [PACKED] * len(share)
            else:
                margins = self._batched_margins(batch)
                paths = [BATCHED] * len(margins)
            indices = [i for s in batch for i in s.indices] + [i for i, _ in share]
            for index, margin, path in zip(indices, margins, paths, strict=True):
                results[index] = ScoreResult(margin=margin, path=path)

    def _text_only_to_score(self, requests: Sequence[ScoreRequest], indices: list[int],
                            results: list[ScoreResult | None]) -> list[int]:
        """The text-only prompts to score: one of each prompt whose margin is not kept; the kept ones answered
        now. With no image a margin depends on nothing but the prompt, so a question asked again (one finding
        across a dataset, or of every study a node receives) takes it from the first computation, and a batch
        of studies asking the same question scores it once."""
        first: dict[str, int] = {}
        for index in indices:
            text = requests[index].rendered
            if text in self._text_only_margins:
                self._text_only_margins.move_to_end(text)
                results[index] = ScoreResult(margin=self._text_only_margins[text], path=KEPT)
            else:
                first.setdefault(text, index)
        return list(first.values())

    def _keep_text_only(self, requests: Sequence[ScoreRequest], asked: list[int], scored: list[int],
                        results: list[ScoreResult | None]) -> None:
        """Keep the margins just scored, and give the other requests for the same prompts theirs."""
        fresh = {requests[index].rendered: results[index] for index in scored}
        for text, result in fresh.items():
            kept(self._text_only_margins, text, lambda margin=result.margin: margin, KEPT_MARGINS)
        for index in asked:
            if results[index] is None:
                results[index] = ScoreResult(margin=fresh[requests[index].rendered].margin, path=KEPT)

    def warm(self, requests: Sequence[ScoreRequest]) -> None:
        """Each named study's prefix, and each content-free reference's, computed and kept (the image and the
        template's opening: the same whatever the question), so that the first question asked of a study runs
        on the suffix passes alone, even at a size whose reference the model has not seen; each map copy's
        reading kept (on the workers), and no prefix of it, so that its study's first map reads no copy."""
        if not self.prefix_ok():
            return
        groups = [indices for image, indices in group_by_image(requests).items() if image is not None]
        copies = [indices for indices in groups if requests[indices[0]].copy_key is not None]
        studies = [indices for indices in groups if requests[indices[0]].copy_key is None]
        self._tokenize_studies(requests, copies, for_prefix=True)  # tokenizing a copy keeps its reading
        for indices in studies:
            study = self._tokenize_study(requests, indices, for_prefix=True)
            if study.prefix_len < 1:  # the image ends the prompt: no prefix to keep
                continue
            if study.reuse_key is not None:
                self._reference_prefix(study, self._content_of(study))
            elif (key := self._kept_key(study)) is not None:
                self._keep_study(key, partial(self._run_prefix, [study]))

    def _tokenize_text_only(self, requests: Sequence[ScoreRequest], indices: list[int]) -> list[tuple[int, list[int]]]:
        if not indices:
            return []
        inputs = self.loaded.family.encode(self.loaded.processor, [requests[i].rendered for i in indices], None)
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [(i, inputs["input_ids"][row, :n].tolist()) for row, (i, n) in enumerate(zip(indices, lengths, strict=True))]

    # -- the self-check ------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.prefix_ok()

    def prefix_ok(self) -> bool:
        """Whether the cached prefix reproduces a full forward on this model (checked once)."""
        if self._prefix_ok is None:
            self._prefix_ok = self.loaded.family.prefix_cache_exact and self.self_check()
        return self._prefix_ok

    def self_check(self) -> bool:
        """Whether the fast path reproduces full forwards on this model, compared on one study in the model's
        own precision. A backend may check more (PyTorch checks a half-precision model's semantics in float32)."""
        exact = self.loaded.dtype == torch.float32
        return self._paths_agree(EXACT_TOLERANCE if exact else HALF_PRECISION_TOLERANCE)

    def _paths_agree(self, tolerance: float) -> bool:
        """The cached path against full forwards on two phrasings of one study and a text-only prompt."""
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        family, processor = self.loaded.family, self.loaded.processor
        texts = ["Is there a pleural effusion?", "Does this chest radiograph show fluid in the pleural space?"]
        rendered = [
            family.render(processor, self.loaded.wrap(t), True, self.loaded.chat_template) for t in texts
        ]
        requests = [ScoreRequest(r, image) for r in rendered]
        if family.accepts_imageless:
            requests.append(ScoreRequest(family.render(processor, self.loaded.wrap(texts[0]), False,
                                                       self.loaded.chat_template), None))
        study = self._tokenize_study(requests, [0, 1], for_prefix=True)
        if study.prefix_len < 1:
            return False
        text_only = [ids for _, ids in self._tokenize_text_only(requests, list(range(2, len(requests))))]
        model_type = getattr(self.loaded.config, "model_type", "?")
        try:
            cached, _ = self._prefix_margins([study], text_only)
        except (RuntimeError, ValueError, IndexError, TypeError, KeyError) as exc:
            log.warning("the prefix-shared path cannot run on model type %r (%s); using batched full forwards",
                        model_type, one_line(exc))
            return False
        full = self.full_forward_margins(rendered, [image, image])
        if text_only:
            full += self.full_forward_margins([requests[2].rendered], None)
        error = max(abs(a - b) for a, b in zip(cached, full, strict=True))
        if not error <= tolerance:  # a NaN margin fails too
            log.warning("prefix cache is off by %.2g on model type %r in %s (its attention or positions differ "
                        "from a causal prefix's); using batched full forwards", error, model_type, self.loaded.dtype)
            return False
        return True

    # -- preparing studies ---------------------------------------------------------------------------

    def _tokenize_studies(self, requests: Sequence[ScoreRequest], chunks: list[list[int]],
                          for_prefix: bool) -> list[Study]:
        """Each chunk's study tokenized (`_tokenize_study`). Pictures the processor has not read yet (an evidence
        map's filled copies, a dataset batch's studies) are read on worker threads, several at once, and spliced
        with their prompts here: resizing a full-size radiograph took most of a map's time (on `demo`, 30 ms of a
        copy's 40), and PIL's resize and NumPy's arithmetic run outside the GIL. Each worker reads with its own
        copy of the processor, since a tokenizer's settings change with every call; what is kept is kept here.
        A map copy that several chunks show (the maps of a film's several findings in one dataset batch) is read
        once, and its reading spliced with each chunk's prompts."""
        new = [index for index, chunk in enumerate(chunks) if for_prefix and self._unread(requests[chunk[0]])]
        reads: dict[int, ReadImage | None] = {}
        if len(new) > 1 and PREPROCESS_WORKERS > 1:
            if self._readers is None:
                self._readers = ThreadPoolExecutor(PREPROCESS_WORKERS, thread_name_prefix="quadrant-read")
            family = self.loaded.family

            def picture(index: int) -> str | int:
                return requests[chunks[index][0]].copy_key or index

            firsts = {picture(index): requests[chunks[index][0]] for index in new}  # a request showing each picture
            read = dict(zip(firsts, self._readers.map(
                lambda first: family.read_image(self._worker_processor(), first.rendered, first.picture()),
                firsts.values()), strict=True))
            reads = {index: read[picture(index)] for index in new}
        return [self._tokenize_study(requests, chunk, for_prefix, reads.get(index, UNREAD))
                for index, chunk in enumerate(chunks)]

    def _unread(self, request: ScoreRequest) -> bool:
        """Whether a request's picture is one the processor has not read: any but a content-free reference's (its
        tokenization is kept), and a study's or a map copy's whose reading is kept."""
        return (request.image is not None and request.reuse_key is None and request.study_key not in self._read_images
                and request.copy_key not in self._copy_readings)

    def _worker_processor(self):
        """This worker thread's own copy of the processor."""
        if not hasattr(self._worker, "processor"):
            self._worker.processor = copy.deepcopy(self.loaded.processor)
        return self._worker.processor

    def _tokenize_study(self, requests: Sequence[ScoreRequest], indices: list[int], for_prefix: bool,
                        read: object = UNREAD) -> Study:
        """Tokenize one study's prompts; for the cached path, with the image preprocessed only once (or as a
        worker `read` it). A content-free reference (a `reuse_key`) is tokenized once per set of prompts and kept:
        its image is the same every time, so preprocessing it again would only repeat the same pixels."""
        first = requests[indices[0]]
        rendered = [requests[i].rendered for i in indices]

        def make() -> Study:
            return self._tokenize(rendered, first, for_prefix, read)

        if for_prefix and first.reuse_key is not None:
            study = kept(self._reused_studies, (first.reuse_key, tuple(rendered)), make, REUSED_STUDIES)
        else:
            study = make()
        return replace(study, indices=indices)

    def _tokenize(self, rendered: list[str], first: ScoreRequest, for_prefix: bool,
                  read: object = UNREAD) -> Study:
        """The prompts' tensors and shared prefix length (indices are the caller's to fill in)."""
        once = self._encode_one_image(rendered, first, read) if for_prefix else None
        if once is None:
            inputs = self.encode(rendered, [first.picture()] * len(rendered))
        else:
            inputs = {k: self.steps.place(k, v) for k, v in once.items()}
        keyed = first.reuse_key is not None or (for_prefix and first.study_key is not None)
        return Study(indices=[], inputs=inputs, reuse_key=first.reuse_key,
                     study_key=first.study_key if for_prefix else None,
                     prefix_len=self._shared_prefix_len(inputs, image_only=keyed))

    def _encode_one_image(self, rendered: list[str], first: ScoreRequest,
                          read: object = UNREAD) -> dict | None:
        """The prompts with their study's image through the processor once (None where the family cannot
        splice exactly); for a study named by its picture, once across calls: the processor's reading of it
        is kept beside its prefix, so that a later question about it runs no processor on the image; so is a
        map copy's named by its `copy_key`, for the next question's map. `read`: the reading a worker made
        (UNREAD: none)."""
        family, processor = self.loaded.family, self.loaded.processor

        def reading() -> ReadImage | None:
            return family.read_image(processor, rendered[0], first.picture()) if read is UNREAD else read

        if first.study_key is not None:
            found = kept(self._read_images, first.study_key, reading, STUDY_PREFIXES)
        elif first.copy_key is not None:
            found = kept(self._copy_readings, first.copy_key, reading, COPY_READINGS, _reading_bytes, COPY_READING_BYTES)
        else:  # read with these very prompts: a failed splice would fail again
            found = reading()
            if found is None:
                return None
            if first.reuse_key is not None:  # its next prompts are spliced without its pixels (`_spliced_reference`)
                kept(self._reference_splices, first.reuse_key, lambda: found.splice, REUSED_STUDIES)
            return family.splice(processor, rendered, found)
        if found is None:
            return None
        spliced = family.splice(processor, rendered, found)  # a kept reading may have been made with other prompts
        return spliced if spliced is not None else family.encode_one_image(processor, rendered, first.picture())

    def _shared_prefix_len(self, inputs: dict[str, torch.Tensor], image_only: bool = False) -> int:
        """Longest common token prefix, leaving every row at least one token of its own, and covering
        every image token (else the prefix cannot hold the image and the batched path must run).

        `image_only` ends the prefix right after the last image token instead: a kept prefix (a reference's,
        a study's) then holds the template's opening and the image alone, the same whatever the question, so
        one kept prefix serves every question asked of that image."""
        ids, lengths = inputs["input_ids"], inputs["attention_mask"].sum(dim=1)
        shortest = int(lengths.min())
        same = (ids[:, :shortest] == ids[:1, :shortest]).all(dim=0)
        differing = torch.nonzero(~same)
        common = int(differing[0]) if len(differing) else shortest
        prefix_len = min(common, shortest - 1)
        image_token = self.loaded.family.image_token_id(self.loaded.config)
        if image_token is not None:
            positions = torch.nonzero(ids[0] == image_token)
            if len(positions) and int(positions[-1]) >= prefix_len:
                return 0
            if len(positions) and image_only:
                return int(positions[-1]) + 1
        return prefix_len

    def _batches(self, studies: list[Study], by_prefix: bool):
        """Studies in batches of at most max_batch prompts; with the cache, of equal prefix lengths, within the
        runtime's `prefix_tokens`, and a study whose prefix is kept alone in its batch (its suffix pass runs on
        that prefix)."""
        key = self._prefix_key
        if by_prefix:
            kept_before = [study for study in studies if self._kept_key(study) in self._study_prefixes]
            yield from ([study] for study in kept_before)
            studies = sorted((s for s in studies if not any(s is k for k in kept_before)), key=key)
        batch: list[Study] = []
        rows = 0
        for study in studies:
            n = len(study.indices)
            fits = rows + n <= self.max_batch and (not by_prefix or not batch or (
                key(batch[0]) == key(study) and self._prefix_fits(len(batch) + 1, study.prefix_len)))
            if batch and not fits:
                yield batch
                batch, rows = [], 0
            batch.append(study)
            rows += n
        if batch:
            yield batch

    def _prefix_fits(self, studies: int, prefix_len: int) -> bool:
        """Whether one prefix pass over `studies` prefixes of `prefix_len` tokens stays within the runtime's bound."""
        bound = self.steps.prefix_tokens
        return bound is None or studies * prefix_len <= bound

    def _prefix_key(self, study: Study) -> tuple:
        """Studies share a prefix call when their prefixes have the same length and their image tensors
        stack (tiled images can differ in their number of tiles)."""
        images = self.loaded.family.prefix_image_inputs(self.loaded.config, study.inputs)
        return study.prefix_len, tuple(sorted((k, tuple(v.shape[1:])) for k, v in images.items()))

    # -- the two computations ------------------------------------------------------------------------

    def _prefix_margins(self, batch: list[Study], standalone: list[list[int]]) -> tuple[list[float], str]:
        """One prefix pass for the batch's studies, then one pass over all their suffixes, packed; and the
        with-image prompts' path.

        A batch of one study named by its picture keeps its prefix, and a later batch of that study starts
        from it: a follow-up question costs the suffix pass alone. The suffix pass runs on a fork, since it
        may extend the key/values in place. A batch of several studies keeps nothing: their prefixes are
        stacked rows, which a runtime's key/values do not split generically."""
        key = self._kept_key(batch[0]) if len(batch) == 1 else None
        if key is None:
            prefix, path = self._run_prefix(batch), PREFIX
        else:
            path = REUSED if key in self._study_prefixes else PREFIX
            prefix = self.steps.fork(self._keep_study(key, lambda: self._run_prefix(batch)))
        return self.steps.run_suffixes(prefix, pack_batch(batch, standalone, self.loaded.dtype)), path

    def _keep_study(self, key: tuple, make) -> Prefix:
        """A study's kept prefix, made when missing, within STUDY_PREFIXES and KEPT_BYTES."""
        return kept(self._study_prefixes, key, make, STUDY_PREFIXES, self.steps.nbytes, KEPT_BYTES)

    @staticmethod
    def _kept_key(study: Study) -> tuple | None:
        """Where a study's prefix is kept: its picture and the prefix's own token ids (another template or
        model revision gives other ids); None for a study not named by its picture."""
        if study.study_key is None or study.prefix_len < 1:
            return None
        return study.study_key, tuple(study.inputs["input_ids"][0, : study.prefix_len].tolist())

    def _score_references(self, requests: Sequence[ScoreRequest], chunks: list[list[int]],
                          results: list[ScoreResult | None]) -> Callable[[], None]:
        """Score the content-free references' chunks into `results`, and return what to call before reading
        them. Each chunk is laid out here, on the caller's thread (a tokenizer's settings change with every
        call, so it is not shared with another thread); where the runtime gains from it (`steps.overlaps`), the
        forwards then run on a thread of their own, beside the studies' reading and prefix pass."""
        laid = [(chunk, self._reference_margins(requests, chunk)) for chunk in chunks]

        def score() -> None:
            for chunk, reference in laid:
                margins, path = reference()
                for index, margin in zip(chunk, margins, strict=True):
                    results[index] = ScoreResult(margin=margin, path=path)

        if not (laid and self.steps.overlaps):
            score()
            return lambda: None
        if self._beside is None:
            self._beside = ThreadPoolExecutor(1, thread_name_prefix="quadrant-reference")
        return self._beside.submit(score).result

    def _reference_margins(self, requests: Sequence[ScoreRequest],
                           indices: list[int]) -> Callable[[], tuple[list[float], str]]:
        """What gives a content-free reference's margins and the path that gave them, its prompts laid out
        (spliced as its first reading was, or tokenized) and its image's content hashed. Its image is the same for every
        study of a size, so its prefix pass is paid once per model and kept; and its margins depend on nothing
        but that image and the prompts, so a question asked again (one finding across a dataset, a common
        question in the app) takes them from the first computation, exactly, without a forward. Both are kept
        under what the model is given (the image's tensors and the token ids), not under the study's size: a
        family that resizes every image to one size (LLaVA's 336 px) sees one gray picture whatever the size,
        and a dataset's many sizes then share one prefix instead of paying one each."""
        first = requests[indices[0]]
        rendered = tuple(requests[i].rendered for i in indices)
        spliced = None
        if (first.reuse_key, rendered) not in self._reused_studies:
            spliced = self._spliced_reference(requests, indices)
        study, prefix = spliced or (self._tokenize_study(requests, indices, for_prefix=True), None)
        content = self._content_of(study)
        lengths = study.lengths.tolist()
        key = (content, tuple(tuple(row[:n]) for row, n in zip(study.inputs["input_ids"].tolist(), lengths,
                                                               strict=True)))

        def margins() -> tuple[list[float], str]:
            path = KEPT if key in self._kept_margins else REUSED
            return kept(self._kept_margins, key, lambda: self._reused_suffix_margins(study, content, prefix),
                        KEPT_MARGINS), path

        return margins

    def _content_of(self, study: Study) -> str:
        """A reference's image as the model takes it (its tensors: pixels, and grids or masks where the family
        has them), hashed once per reuse key; a reference spliced without its pixels (`_spliced_reference`) is
        spliced only once this hash is known."""
        def digest() -> str:
            hashed = hashlib.sha256()
            images = self.loaded.family.prefix_image_inputs(self.loaded.config, study.inputs)
            for name, tensor in sorted(images.items()):
                flat = tensor.detach().cpu().contiguous().flatten()
                hashed.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
                hashed.update(flat.view(torch.uint8).numpy().tobytes())
            return hashed.hexdigest()

        return kept(self._reference_content, study.reuse_key, digest, REUSED_STUDIES)

    def _spliced_reference(self, requests: Sequence[ScoreRequest],
                           indices: list[int]) -> tuple[Study, Prefix] | None:
        """The reference's prompts spliced as the processor's first reading of its image laid out its tokens,
        without its pixels, with its kept prefix; None when that reading, its image's content or its prefix is
        not kept (its size's first check reads the image and keeps all three), or the prompts do not splice.

        Processing the reference image again would cost a tenth of a check, for nothing: the pixels are the
        same every time and only enter the prefix pass, which is kept. The kept prefix is looked up by the
        spliced prefix's own token ids, so a splice that differed from the processor's would find none. Needing
        no study, the reference is laid out before its studies are read, and its forward can run beside them."""
        first = requests[indices[0]]
        content = self._reference_content.get(first.reuse_key)
        splice = self._reference_splices.get(first.reuse_key)
        if content is None or splice is None:
            return None
        spliced = self.loaded.family.splice(self.loaded.processor, [requests[i].rendered for i in indices],
                                            ReadImage({}, splice))
        if spliced is None:
            return None
        per_token = ("input_ids", "attention_mask") + self.loaded.family.prefix_keys
        inputs = {k: self.steps.place(k, v) for k, v in spliced.items() if k in per_token}
        prefix_len = self._shared_prefix_len(inputs, image_only=True)
        key = (content, tuple(inputs["input_ids"][0, :prefix_len].tolist()))
        if prefix_len < 1 or key not in self._reused:
            return None
        self._reused.move_to_end(key)
        self._reference_content.move_to_end(first.reuse_key)
        self._reference_splices.move_to_end(first.reuse_key)
        return Study(indices, inputs, prefix_len, first.reuse_key), self._reused[key]

    def _reused_suffix_margins(self, study: Study, content: str, prefix: Prefix | None = None) -> list[float]:
        """The reference's suffix pass on its kept prefix (`prefix`, or looked up by its image's `content` and
        prefix ids, and made when missing)."""
        if prefix is None:
            prefix = self._reference_prefix(study, content)
        return self.steps.run_suffixes(self.steps.fork(prefix), pack_batch([study], [], self.loaded.dtype))

    def _reference_prefix(self, study: Study, content: str) -> Prefix:
        """A reference's kept prefix, by its image's content and its prefix ids, made when missing."""
        ids = study.inputs["input_ids"][0, : study.prefix_len].tolist()
        return kept(self._reused, (content, tuple(ids)), lambda: self._run_prefix([study]), REUSED_PREFIXES,
                    self.steps.nbytes, KEPT_BYTES)

    def _run_prefix(self, batch: list[Study]) -> Prefix:
        """The shared prefix of each study, stacked across studies, with each study's image tensors."""
        family, prefix_len = self.loaded.family, batch[0].prefix_len
        tokens = {
            key: torch.cat([s.inputs[key][:1, :prefix_len] for s in batch])
            for key in ("input_ids", "attention_mask") + family.prefix_keys
            if key in batch[0].inputs
        }
        images = [family.prefix_image_inputs(self.loaded.config, s.inputs) for s in batch]
        return self.steps.run_prefix(tokens, images)

    def _batched_margins(self, batch: list[Study]) -> list[float]:
        """Each study's prompts as one padded full forward (exact for every family), the image encoded
        once where the runtime and family allow."""
        return [m for study in batch for m in self.steps.run_full(study.inputs, one_image=True)]


def _reading_bytes(read: ReadImage | None) -> int:
    """The bytes of a reading's tensors (none for a picture the family cannot splice)."""
    return 0 if read is None else sum(t.nbytes for t in read.tensors.values())


def _split(items: list, parts: int) -> list[list]:
    """items in `parts` contiguous, nearly equal shares."""
    size, extra = divmod(len(items), parts)
    shares, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        shares.append(items[start:end])
        start = end
    return shares


def _chunks(items: list[int], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
