import pytest
import torch
from deepseek_moe import DeepSeekV3, DeepSeekV3Config

# One intra-op thread: on a shared, oversubscribed CPU, OpenMP worker threads make small ops 10-100x slower.
torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg() -> DeepSeekV3Config:
    return DeepSeekV3Config.preset("tiny")


@pytest.fixture
def tiny_model(tiny_cfg) -> DeepSeekV3:
    torch.manual_seed(0)
    return DeepSeekV3(tiny_cfg).eval()
