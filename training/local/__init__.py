"""Supervised local learning: gradient-isolated modules with aux nets on any list of blocks. (Forward-Forward and
Mono-Forward, research-only, live beside their bench: bench/train/local_research/.)"""
from training.local.aux_nets import auglocal, ema_update_, greedy, man, pyramid_depths, sample_later_blocks
from training.local.core import (AuxSite, Backbone, LocalModel, backprop_step, local_step, plan_modules,
                                 trainable)

__all__ = ["AuxSite", "Backbone", "LocalModel", "auglocal", "backprop_step", "ema_update_", "greedy", "local_step",
           "man", "plan_modules", "pyramid_depths", "sample_later_blocks", "trainable"]
