"""SwallowCode stages 1-2 for Python code: a compile() syntax check and pylint scoring, pure and Beam-free."""
