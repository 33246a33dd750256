import pytest
import torch
from phinet.augment import AugmentSpec, BatchAugment, ThreeViewTransform, original_view


def test_three_view_transform_shapes_and_original_is_deterministic():
    torch.manual_seed(0)
    t = ThreeViewTransform.preset("cifar", 32)
    img = torch.rand(3, 32, 32)
    x1, x2, x0 = t(img)
    assert x1.shape == x2.shape == x0.shape == (3, 32, 32)
    assert not torch.equal(x1, x2)
    torch.testing.assert_close(t(img)[2], x0)
    with pytest.raises(ValueError, match=r"one \(C, H, W\) image"):
        t(torch.rand(2, 3, 32, 32))


def test_batch_augment_identity_when_switched_off():
    spec = AugmentSpec(image_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
                       gray_p=0.0)
    x = torch.rand(5, 1, 8, 8)
    y = BatchAugment(spec).view(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_batch_augment_flip_and_per_image_randomness():
    spec = AugmentSpec(image_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0,
                       gray_p=0.0)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(BatchAugment(spec).view(x), x.flip(-1), atol=1e-5, rtol=0)
    aug = BatchAugment.preset("cifar", 8)
    x = torch.rand(1, 3, 8, 8).expand(16, 3, 8, 8).contiguous()
    x1, x2, x0 = aug(x, torch.Generator().manual_seed(0))
    assert x1.shape == x0.shape == (16, 3, 8, 8)
    assert (x1[0] - x1[1:]).abs().amax() > 1e-3          # each image gets its own crop/colour
    torch.testing.assert_close(x0[0], x0[1])             # the original view is deterministic


def test_batch_augment_seeded():
    aug = BatchAugment.preset("small", 8)
    x = torch.rand(4, 1, 8, 8)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_original_view_matches_torchvision():
    from torchvision.transforms import v2

    x = torch.rand(3, 3, 32, 32)
    ref = v2.Compose([v2.Resize(37, antialias=True), v2.CenterCrop(32)])(x)
    torch.testing.assert_close(original_view(x, 32), ref, atol=1e-5, rtol=0)


def test_bad_spec_raises():
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentSpec(image_size=8, crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="preset"):
        AugmentSpec.preset("imagenet", 8)
