"""The trainers, each sharing the baseline loop and replacing how micro-batches become gradients; registry.py lists
them by name. Nothing is imported here, so that the config can read the registry."""
