import pytest
import torch
from phinet.backbones import CifarResNet18, SmallCNN, build_backbone


@pytest.mark.parametrize("size", [8, 28])
def test_small_cnn_shapes(size):
    net = SmallCNN(1, size, width=8)
    assert net(torch.rand(3, 1, size, size)).shape == (3, 32)


def test_cifar_resnet18_is_torchvision_with_cifar_stem():
    net = CifarResNet18(3, 32)
    assert net.net.conv1.kernel_size == (3, 3) and net.net.conv1.stride == (1, 1)
    assert isinstance(net.net.maxpool, torch.nn.Identity) and isinstance(net.net.fc, torch.nn.Identity)
    net.eval()
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 512)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="multiple of 8"):
        CifarResNet18(3, 20)
    with pytest.raises(ValueError, match="8x8, 28x28 or 32x32"):
        SmallCNN(1, 16)
    net = SmallCNN(1, 28, width=4)
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        net(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="backbone must be"):
        build_backbone("vit", 3, 32)
