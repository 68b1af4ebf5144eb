"""Research-only local learning, used by bench/train/local_digits.py and tests/bench/: Forward-Forward, Mono-Forward,
the digits networks (MLP, mini-ResNet), a minimal training loop and the memory/FLOP measures. The trainers use none
of it (training/local/ holds what they use)."""
