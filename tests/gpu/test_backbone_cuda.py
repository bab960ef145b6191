"""The backbone on CUDA agrees with the CPU where the algorithm is deterministic."""

import torch

from polydiff.diffusion import (
    AvgPool,
    PointMask,
    TrainConfig,
    build_network,
    make_scheduler,
    sample,
    train,
)


def _unet(seed=0):
    torch.manual_seed(seed)
    return build_network({"type": "unet2d", "sample_size": 16, "in_channels": 2,
                          "out_channels": 2, "block_out_channels": [16, 32],
                          "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
                          "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
                          "layers_per_block": 1, "norm_num_groups": 8})


def test_unet_forward_matches_cpu(cuda):
    net = _unet().eval()
    x = torch.randn(4, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(500)
    with torch.no_grad():
        cpu = net(x, t).sample
        gpu = net.to(cuda)(x.to(cuda), t.to(cuda)).sample.cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_ddim_sampling_matches_cpu_from_the_same_noise(cuda):
    net = _unet().eval()
    sched = make_scheduler("ddim")
    x_T = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(2))

    def run(device):
        model = net.to(device)
        with torch.no_grad():
            return sample(lambda x, t: model(x, t).sample, sched, x_T.shape, steps=10,
                          x_T=x_T.to(device), device=device).sample.cpu()

    torch.testing.assert_close(run(cuda), run(torch.device("cpu")), rtol=1e-2, atol=1e-2)


def test_operators_follow_the_field_to_cuda(cuda):
    x = torch.randn(2, 3, 8, 8, device=cuda)
    pool = AvgPool(2)
    assert pool.forward(x).device.type == "cuda"
    mask = PointMask(torch.rand(3, 8, 8) > 0.5)
    assert mask.forward(x).device.type == "cuda"


def test_one_training_step_with_micro_batches_on_cuda(cuda, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=8, micro_batch=3, device="cuda",
                      mixed_precision="bf16", out_dir=str(tmp_path))
    data = torch.randn(16, 2, 16, 16)
    result = train(_unet(), make_scheduler("ddpm"), data, cfg, progress=False)
    assert len(result.losses) == 2 and all(v == v for v in result.losses)
    assert (tmp_path / "unet").is_dir()
