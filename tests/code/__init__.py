"""Tests of the SwallowCode syntax check and pylint scoring (transforms.code)."""
