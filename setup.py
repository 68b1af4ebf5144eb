"""Shim so Beam's --setup_file can stage this package to remote workers; metadata lives in pyproject.toml."""
from setuptools import setup

setup()
