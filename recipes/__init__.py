"""Data recipes: raw Bandai-Namco mocap -> training/validation pose files (see recipes/README.md)."""
