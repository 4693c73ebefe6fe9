"""How long a check waits when it is asked while another check's evidence map is drawn:
`python -m quadrant.models.measure_map_wait [--model M] [--rounds 5]`.

The app's service draws a map after its verdict is shown, its filled copies going to the model `max_batch` at a
time through the queue the checks use. In one process, on one loaded model, a service with chunks of 8 and one
whose chunk holds the whole map (the map as one job, as before) take turns: each checks a new picture, starts
its map on another thread, and 0.3 s later times a check of another new picture; it prints the medians of that
check and of the map. Every picture is new to the model (`measure_burst.pictures`), so no check is a
follow-up's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from quadrant.app.service import CheckService
from quadrant.backends import load_model
from quadrant.check import Checker
from quadrant.evidence import EvidenceOptions, forwards_per_map
from quadrant.loading import ModelSpec
from quadrant.models.measure_burst import pictures

#: how long after its map starts the other check is asked
DELAY_S = 0.3


def one_round(service: CheckService, mapped: tuple[Path, str], other: tuple[Path, str]) -> tuple[float, float]:
    """Seconds the other check took, and the map."""
    checked = service.check_upload(*mapped)
    taken = {}

    def draw() -> None:
        started = time.perf_counter()
        service.draw_map(checked)
        taken["map"] = time.perf_counter() - started

    thread = threading.Thread(target=draw)
    thread.start()
    time.sleep(DELAY_S)
    started = time.perf_counter()
    service.check_upload(*other)
    taken["check"] = time.perf_counter() - started
    thread.join()
    return taken["check"], taken["map"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="a bundled model's name or a model folder")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    checker = Checker(load_model(ModelSpec(args.model)))
    options = EvidenceOptions()
    chunks = {"chunks of 8": 8, "the map as one job": forwards_per_map(options)}
    timed: dict[str, list[tuple[float, float]]] = {name: [] for name in chunks}
    with tempfile.TemporaryDirectory() as folder:
        cases = iter(pictures(Path(folder), 2 * len(chunks) * (args.rounds + 1)))
        for round_ in range(args.rounds + 1):  # the first round warms up, untimed
            for name, chunk in chunks.items():
                service = CheckService({args.model: checker}, None, max_batch=chunk, evidence_options=options)
                service.start()  # one service's thread at a time runs the model
                try:
                    result = one_round(service, next(cases), next(cases))
                finally:
                    service.stop()
                if round_:
                    timed[name].append(result)
    for name, results in timed.items():
        print(f"{name}: a check asked {DELAY_S} s into a map took {statistics.median(r[0] for r in results) * 1000:.0f} ms "
              f"(median of {len(results)}), the map {statistics.median(r[1] for r in results):.2f} s")


if __name__ == "__main__":
    main()
