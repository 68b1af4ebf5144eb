"""Reusable building blocks: pure functions at the top level, their Beam shells in transforms.beam."""
