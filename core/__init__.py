"""The bottom layer that the data side (transforms, pipelines) and the model side (training) both import: strict YAML
into frozen dataclasses with key=value overrides, the shipped configs as package data, the token-shard format.
It imports nothing of ours."""
