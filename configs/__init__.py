"""Recipes (YAML) and word/domain lists shipped with Refinery; resolved with importlib.resources."""
