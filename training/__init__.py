"""Training on the token shards our pipelines make: tokenizer, data, model, trainers, checkpoints, export."""
