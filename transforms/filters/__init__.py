"""Quality, repetition and URL filters: pure functions over a pre-split document (transforms.text.TextView)."""
