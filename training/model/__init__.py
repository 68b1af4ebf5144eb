"""The Llama-style decoder and its configuration."""
from training.model.config import ModelConfig, flops_per_token, param_count
from training.model.llama import Llama, next_token_loss

__all__ = ["Llama", "ModelConfig", "flops_per_token", "next_token_loss", "param_count"]
