"""The API endpoint `check`: one study, one question, the verdict JSON back, with the page's options.

    from gradio_client import Client, handle_file
    verdict = json.loads(Client(url).predict(handle_file("study.png"), "Is there a pleural effusion?",
                                             api_name="/check"))

The verdict is returned as JSON text, not as a JSON object: gradio_client (2.x, with its default settings)
takes every object in a result that has a string "path" for a file to download, and the verdict's `timing_ms`
has one (the computation path). Text reaches the caller untouched and the verdict keeps schema 1.

Parameters after the first four (the original interface) take the app's own settings when left out: `model`
(one of the models served), `rule`, `threshold` and `reference` (how image reliance is judged), `evidence`
(the occlusion map). Every refusal reaches the caller as one line (gr.Error), never a traceback.
"""

from __future__ import annotations

import json
import logging

import gradio as gr

from quadrant.errors import QuadrantError, one_line
from quadrant.reliance import CONTENT_FREE, RULES

from .account import request_user
from .asgi import read_body, replaying, reply
from .service import CheckService

log = logging.getLogger("quadrant.app")
_MAX_BODY = 8 * 2**20


def add_check_endpoint(service: CheckService) -> None:
    """The endpoint's own hidden inputs and event, inside the Blocks being built: the page's controls can
    change freely without changing the API."""
    model, rule, threshold, reference, evidence = option_defaults(service)
    with gr.Row(visible=False):
        inputs = [
            gr.File(label="image", type="filepath"),
            gr.Textbox(label="question"),
            gr.Textbox(label="paraphrases", value=""),
            gr.Textbox(label="ablation", value=""),
            gr.Dropdown(list(service.checkers), value=model, label="model"),
            gr.Dropdown(list(RULES), value=rule, label="rule"),
            gr.Number(value=threshold, minimum=0, label="threshold"),
            gr.Dropdown(list(CONTENT_FREE), value=reference, label="reference"),
            gr.Checkbox(value=evidence, label="evidence"),
        ]
        verdict = gr.Textbox(label="verdict")
    trigger = gr.Button(visible=False)
    trigger.click(_Endpoint(service).check, inputs, verdict, api_name="check", concurrency_id="check",
                  concurrency_limit=service.batcher.max_batch,
                  api_description="Check one study: image (PNG, JPEG or DICOM file), a yes/no question, paraphrases "
                  "one a line (may be empty), ablation (may be empty), and optionally the model, the reliance rule, "
                  "threshold and reference, and whether to draw the evidence map. Returns the verdict as JSON text.")


def option_defaults(service: CheckService) -> list:
    """The values the parameters after the first four take when a call leaves them out: the app's own."""
    reliance = service.checkers[service.default_model].options.reliance
    return [service.default_model, reliance.rule, reliance.threshold, reliance.reference,
            service.evidence_by_default]


class FourValueCalls:
    """ASGI middleware: a plain HTTP call of `check` (`POST .../call/check`) that sends the original four
    values gets the app's own settings for the rest. gradio_client fills them in itself; Gradio alone would
    refuse the call for missing values."""

    def __init__(self, app, defaults: list):
        self.app = app
        self.defaults = list(defaults)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and \
                scope.get("path", "").rstrip("/").endswith(("/call/check", "/call/v2/check")):
            body = await read_body(receive, _MAX_BODY)
            if body is None:
                return await reply(send, 413, b"Request too large.")
            receive = replaying(scope, _with_defaults(body, self.defaults), receive)
        await self.app(scope, receive, send)


def _with_defaults(body: bytes, defaults: list) -> bytes:
    """The request body with `defaults` after its data when it holds only the original four values."""
    try:
        request = json.loads(body)
    except ValueError:
        return body  # Gradio answers malformed JSON itself
    if not (isinstance(request, dict) and isinstance(request.get("data"), list) and len(request["data"]) == 4):
        return body
    return json.dumps({**request, "data": request["data"] + defaults}).encode("utf-8")


class _Endpoint:
    def __init__(self, service: CheckService):
        self.service = service

    def check(self, image, question, paraphrases, ablation, model, rule, threshold, reference, evidence,
              request: gr.Request) -> str:
        try:
            ablation = "" if ablation in (None, "", "default") else ablation  # "default", as the page says it
            verdict = self.service.check(image, question or "", paraphrases or "", ablation, model=model,
                                         rule=rule, threshold=threshold, reference=reference,
                                         evidence=None if evidence is None else bool(evidence),
                                         user=request_user(request))
        except QuadrantError as exc:
            raise gr.Error(one_line(exc, limit=1000), print_exception=False) from None
        except Exception as exc:
            log.exception("API check failed unexpectedly")
            raise gr.Error(f"unexpected error ({type(exc).__name__}: {one_line(exc)})",
                           print_exception=False) from None
        return json.dumps(verdict, ensure_ascii=False)
