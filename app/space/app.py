"""Hugging Face Space entry point: `quadrant app` on the bundled demo pair, reachable from outside.

A Space runs `python app.py` and expects a server on 0.0.0.0:7860. The model switch offers `demo` (reads
the image) and `demo-shortcut` (answers from the text alone), so a visitor sees Ideal and Dangerous on the
same study. Extra command-line arguments are passed on (e.g. `python app.py --port 7861` locally).
"""

import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo pair is bundled: nothing to download

from quadrant.cli.main import main  # noqa: E402

DEMO_PAIR = ["app", "--host", "0.0.0.0", "--port", os.environ.get("GRADIO_SERVER_PORT", "7860"),
             "--model", "demo", "--also-model", "demo-shortcut"]

if __name__ == "__main__":
    sys.exit(main(DEMO_PAIR + sys.argv[1:]))
