"""A server runs its model on one thread, its self-check included: the batcher's (quadrant.batcher says why).

The app and the node are built the way their commands build them, on the real demo model; torch's global
forward hook records the thread of every module call, so a forward run anywhere else is seen.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import torch

from orthanc import free_port
from quadrant.app.service import CheckService
from quadrant.batcher import Batcher
from quadrant.cli.app import _load_models
from quadrant.cli.main import build_parser
from quadrant.cli.options import load_checker
from quadrant.models.presets import MODELS_DIR
from quadrant.node.network import Destination
from quadrant.node.service import Node, NodeOptions

SAMPLE = MODELS_DIR / "samples" / "cardiomegaly-effusion.png"
QUESTION = "Is there a pleural effusion?"


@contextmanager
def forward_threads():
    """The thread of every module forward in this process while inside."""
    seen: list[int] = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, inputs: seen.append(threading.get_ident()))
    try:
        yield seen
    finally:
        handle.remove()


def test_prepare_runs_on_the_worker_thread_before_any_item_even_one_queued_before_start():
    threads: list[tuple[str, int]] = []
    batcher = Batcher(lambda items: [threads.append(("handle", threading.get_ident())) or i * 2 for i in items])
    queued = batcher.submit(21)  # waits for the worker, which prepares first
    batcher.start(prepare=lambda: threads.append(("prepare", threading.get_ident())))
    try:
        assert queued.result(timeout=10) == 42
    finally:
        batcher.stop()
    (_, worker), _ = threads
    assert [kind for kind, _ in threads] == ["prepare", "handle"]
    assert {ident for _, ident in threads} == {worker} and worker != threading.get_ident()


def test_a_failed_prepare_is_raised_by_start_and_leaves_no_worker():
    batcher = Batcher(lambda items: items)
    before = threading.enumerate()
    with pytest.raises(ZeroDivisionError):
        batcher.start(prepare=lambda: 1 / 0)
    assert [t for t in threading.enumerate() if t.name == "quadrant-batcher" and t not in before] == []
    batcher.start()  # and it can be started again
    try:
        assert batcher.submit(7).result(timeout=10) == 7
    finally:
        batcher.stop()


def test_the_app_prepares_and_checks_its_models_on_the_batchers_thread():
    args = build_parser("app").parse_args(["app", "--model", "demo"])
    with forward_threads() as seen:
        service = CheckService(_load_models(args), None).start()
        try:
            prepared = len(seen)  # the self-check's forwards
            service.check(SAMPLE, QUESTION, evidence=True)  # its map too, a job of its own
        finally:
            service.stop()
    assert 0 < prepared < len(seen)
    (worker,) = set(seen)
    assert worker != threading.get_ident()


def test_the_node_prepares_its_model_on_the_batchers_thread(tmp_path):
    args = build_parser("node").parse_args(["node", "--model", "demo", "--questions", "unused", "--port", "1",
                                            "--ae-title", "QUADRANT", "--store-to", "PACS@127.0.0.1:1"])
    options = NodeOptions(ae_title="QUADRANT", host="127.0.0.1", port=free_port(), questions=(QUESTION,),
                          store_to=Destination.parse("PACS@127.0.0.1:1"), spool=tmp_path / "spool")
    with forward_threads() as seen:
        Node(load_checker(args), options).start().stop()
    assert seen  # the self-check's forwards
    (worker,) = set(seen)
    assert worker != threading.get_ident()
