"""Supervised local learning: gradient-isolated modules with aux nets on any list of blocks, FF and Mono-Forward."""
from training.local.aux_nets import auglocal, ema_update_, greedy, man, pyramid_depths, sample_later_blocks
from training.local.core import (AuxSite, Backbone, LocalModel, backprop_step, local_step, plan_modules,
                                 trainable)
from training.local.forward_forward import FFConfig, ForwardForward, ff_step
from training.local.mono_forward import layer_predictions, mono_forward

__all__ = ["AuxSite", "Backbone", "FFConfig", "ForwardForward", "LocalModel", "auglocal", "backprop_step",
           "ema_update_", "ff_step", "greedy", "layer_predictions", "local_step", "man", "mono_forward",
           "plan_modules", "pyramid_depths", "sample_later_blocks", "trainable"]
