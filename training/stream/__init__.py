"""StreamBP: exact backpropagation chunked along the sequence, and the losses it streams."""
from training.stream.backprop import StreamConfig, streambp_backward
from training.stream.objectives import DPO, NextToken, reference_loss, sft_targets

__all__ = ["DPO", "NextToken", "StreamConfig", "reference_loss", "sft_targets", "streambp_backward"]
