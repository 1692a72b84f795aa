"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread (and the machine is shared)."""
    import torch  # here, not at module level: some tests check what importing mossa loads

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
