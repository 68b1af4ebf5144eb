"""Fixtures shared by the training tests."""
from __future__ import annotations

import socket

import pytest
import torch.distributed as dist


@pytest.fixture(scope="module")
def group():
    """A real one-rank gloo process group on a free local port, for code that calls torch.distributed itself."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield dist.group.WORLD
    dist.destroy_process_group()
