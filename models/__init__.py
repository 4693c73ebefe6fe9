"""Bundled models and their recipes: presets for real checkpoints, tiny offline builders for tests and the
benchmark, the synthetic chest phantoms, and the demo model with its shortcut LoRA."""
