"""Nothing is downloaded at run time: every model or tokenizer load first switches the Hugging Face hub off."""
from __future__ import annotations

import os
import sys


def enforce_offline() -> None:
    """No Hugging Face hub traffic from this process or the ones it starts, whatever the caller's environment."""
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported before us: its is_offline_mode() reads this module global
        constants.HF_HUB_OFFLINE = True
