"""How a burst of API calls fares against the same calls one at a time: `python -m quadrant.models.measure_burst`.

A real `quadrant app` process (on loopback, its own audit file) serves the bundled sample studies; a client
asks N checks one after another, then N others at once from N threads, and prints the two rates, their
ratio, the batch sizes the server reported (`timing_ms.studies_in_batch`), whether every concurrent verdict
equals the one its study gets alone (the quadrant, the answer, and every margin within 1e-4), and the CPU
seconds the server and the client spent in each phase. Every timed call brings a picture the server has not
seen (a sample with its top-left pixels changed): the fast path keeps a study's prefix for its next question, so
a picture asked about again would be timed as a follow-up, not as the new patient a burst brings. The client is plain HTTP (httpx: upload, call, read the event
stream), the lightest an integrator would write; it still runs on the same machine, so on a small CPU the
CPU split says how much of a burst's time the server itself had.

Then, with the server gone, the ceiling (`model_ceiling`): N checks of N pictures in this process, one at a
time against batches of `--batch`, timed in turn (with N over the 4 studies whose prefixes are kept, a picture
is never found kept from the last round). Batching shares the model's work and nothing else a server does,
so no burst through any server beats `model_batch_gain`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from quadrant.models.presets import MODELS_DIR

CASES = (("cardiomegaly-effusion.png", "Is there a pleural effusion?"),
         ("nodule.png", "Is there a lung nodule?"),
         ("pneumothorax.png", "Is there a pneumothorax?"),
         ("normal.png", "Is there cardiomegaly?"))
TOLERANCE = 1e-4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(folder: Path, model: str, batch: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = (folder / "server.log").open("w")
    env = {**os.environ, "TMPDIR": str(folder), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    command = [str(Path(sys.executable).with_name("quadrant")), "app", "--port", str(port), "--model", model,
               "--audit", str(folder / "audit.sqlite"), "--batch", str(batch)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while "Serving" not in (folder / "server.log").read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"quadrant app did not start:\n{(folder / 'server.log').read_text()}")
        time.sleep(0.5)
    return process, f"http://127.0.0.1:{port}/"


def pictures(folder: Path, count: int) -> list[tuple[Path, str]]:
    """`count` distinct studies and their questions, written into `folder`: the sample cases in turn, the
    i-th with its top-left pixels set to grays that spell i, so that no two share a picture."""
    made = []
    for index in range(count):
        name, question = CASES[index % len(CASES)]
        pixels = np.array(Image.open(MODELS_DIR / "samples" / name).convert("RGB"))
        pixels[0, 0], pixels[0, 1] = index % 256, index // 256
        path = folder / f"{index:04d}-{name}"
        Image.fromarray(pixels).save(path)
        made.append((path, question))
    return made


def _check(client: httpx.Client, case: tuple[Path, str]) -> dict:
    """One call of the API as plain HTTP: upload the study, call `check` with the original four values,
    read the verdict from the event stream."""
    study, question = case
    with study.open("rb") as file:
        (path,) = client.post("gradio_api/upload", files=[("files", (study.name, file))]).raise_for_status().json()
    data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, question, "", ""]
    event = client.post("gradio_api/call/check", json={"data": data}).raise_for_status().json()["event_id"]
    stream = client.get(f"gradio_api/call/check/{event}", timeout=300).raise_for_status().text
    lines = stream.splitlines()
    if "event: complete" not in lines:
        raise RuntimeError(f"the check failed: {stream[:500]}")
    return json.loads(json.loads(lines[lines.index("event: complete") + 1].removeprefix("data:").strip())[0])


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _same(a: dict, b: dict) -> bool:
    """The same verdict: every judgement and answer equal, every margin within TOLERANCE."""
    margins = [(p["margin"], q["margin"]) for p, q in zip(a["prompts"], b["prompts"], strict=True)]
    margins += [(a[k]["margin"], b[k]["margin"]) for k in ("text_only", "content_free")]
    keys = ("quadrant", "consistent", "image_reliant", "answer", "flip_count")
    return all(a[k] == b[k] for k in keys) and all(abs(x - y) <= TOLERANCE for x, y in margins)


def measure(url: str, pid: int, n: int, cookies: dict[str, str] | None = None) -> dict:
    """N checks serially, then N others concurrently, on the server `pid` (after one warm-up per case), each
    of a picture new to the server; then the burst's N again one at a time, untimed, for the comparison.
    `cookies`: a login's, for a server started with --auth."""
    clients = [httpx.Client(base_url=url, timeout=60, cookies=cookies) for _ in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        made = pictures(Path(folder), len(CASES) + 2 * n)
        warmups, serial_cases, burst_cases = made[: len(CASES)], made[len(CASES) : -n], made[-n:]
        for case in warmups:
            _check(clients[0], case)
        server, client, started = _cpu_seconds(pid), _own_cpu_seconds(), time.perf_counter()
        for case in serial_cases:
            _check(clients[0], case)
        serial_s = time.perf_counter() - started
        serial_cpu = _cpu_seconds(pid) - server, _own_cpu_seconds() - client
        with ThreadPoolExecutor(max_workers=n) as pool:
            server, client, started = _cpu_seconds(pid), _own_cpu_seconds(), time.perf_counter()
            burst = list(pool.map(_check, clients, burst_cases))
            burst_s = time.perf_counter() - started
            burst_cpu = _cpu_seconds(pid) - server, _own_cpu_seconds() - client
        alone = [_check(clients[0], case) for case in burst_cases]
    for each in clients:
        each.close()
    sizes = Counter(v["timing_ms"].get("studies_in_batch", 1) for v in burst)
    return {
        "requests": n,
        "serial_s": round(serial_s, 3), "concurrent_s": round(burst_s, 3),
        "serial_per_s": round(n / serial_s, 2), "concurrent_per_s": round(n / burst_s, 2),
        "throughput_ratio": round(serial_s / burst_s, 2),
        "studies_in_batch": dict(sorted(sizes.items())),
        "identical_verdicts": sum(_same(a, b) for a, b in zip(alone, burst, strict=True)),
        "server_cpu_s": {"serial": round(serial_cpu[0], 2), "concurrent": round(burst_cpu[0], 2)},
        "client_cpu_s": {"serial": round(serial_cpu[1], 2), "concurrent": round(burst_cpu[1], 2)},
        "cores": os.cpu_count(),
    }


def model_ceiling(model: str, n: int, batch: int, repeats: int = 5) -> dict:
    """The model's own gain from batching, with no server: N checks of N pictures one at a time against the same
    N in batches of `batch` (the most the app's batcher puts together), each way timed in turn `repeats`
    times, medians reported; every study decoded on its own, as every upload is. Also how many verdicts the
    two ways gave alike. Each way has a checker of its own on the one loaded model, so that neither finds a
    study's prefix the other kept; one at a time, a picture's own prefix is gone by the next round when N is
    over the 4 kept."""
    from quadrant.backends import load_model
    from quadrant.check import Checker, CheckRequest
    from quadrant.images import load_study
    from quadrant.loading import ModelSpec

    loaded = load_model(ModelSpec(model=model))
    alone, together = Checker(loaded).prepare(), Checker(loaded).prepare()
    with tempfile.TemporaryDirectory() as folder:
        requests = [CheckRequest(load_study(path), question) for path, question in pictures(Path(folder), n)]

    def one_by_one() -> list:
        return [verdict for request in requests for verdict in alone.check_many([request])]

    def batched() -> list:
        return [verdict for start in range(0, n, batch) for verdict in together.check_many(requests[start : start + batch])]

    alike = sum(_same(a.to_json(), b.to_json()) for a, b in zip(one_by_one(), batched(), strict=True))
    taken: dict[str, list[float]] = {"one_by_one": [], "batched": []}
    for _ in range(repeats):
        for way, run in (("one_by_one", one_by_one), ("batched", batched)):
            started = time.perf_counter()
            run()
            taken[way].append(time.perf_counter() - started)
    serial, batched_s = statistics.median(taken["one_by_one"]), statistics.median(taken["batched"])
    return {"model_serial_s": round(serial, 3), "model_batched_s": round(batched_s, 3),
            "model_batch_gain": round(serial / batched_s, 2), "model_identical_verdicts": alike}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("-n", type=int, default=20, help="calls in the burst (default 20)")
    parser.add_argument("--batch", type=int, default=8, help="the app's --batch (default 8, as the app's)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        process, url = _start(Path(tmp), args.model, args.batch)
        try:
            result = {"model": args.model, "batch": args.batch, **measure(url, process.pid, args.n)}
        finally:
            process.terminate()
            process.wait(timeout=30)
    result.update(model_ceiling(args.model, args.n, args.batch))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
