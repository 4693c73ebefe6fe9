"""The clinician app stage: the Gradio UI for a single study (also a Hugging Face Space)."""
