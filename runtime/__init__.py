"""Quadrant: is a medical VLM's yes/no answer consistent across phrasings, and does it come from the image?

The runtime stage: loading models, scoring prompts, classifying studies, evaluating datasets, and the
`quadrant` command. See README.md for the tour and the contract, docs/design.md for how the stages fit.
"""

__version__ = "0.1.0"
