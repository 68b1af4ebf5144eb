"""Thin Beam shells (DoFns, PTransforms) over the pure functions of transforms/; the only place that imports Beam."""
