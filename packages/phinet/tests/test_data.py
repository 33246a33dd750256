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
