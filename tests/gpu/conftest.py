"""The GPU suite: every test here is marked ``gpu`` and skipped without CUDA.

Run on a GPU machine with ``pytest -m gpu tests/gpu`` (benchmarks/gpu_check.sh does it).
"""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    here = str(__import__("pathlib").Path(__file__).parent)
    skip = pytest.mark.skip(reason="needs CUDA (no CUDA device here)")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(skip)


@pytest.fixture
def cuda():
    return torch.device("cuda")
