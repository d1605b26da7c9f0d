"""Cluttered digits: determinism, box correctness, image-folder export read back by timm."""
import hashlib

import numpy as np
import torch

from analysis.lab.datasets import ClutteredDigits, DigitsConfig, _sources, export_image_folder, \
    image_folder_datasets, render_example

SMALL = DigitsConfig(resolution=48, num_train=40, num_val=20, digit_size=(20, 30), seed=3)


def _digest(ds):
    return hashlib.sha256(ds.images.numpy().tobytes() + ds.labels.numpy().tobytes()
                          + ds.boxes.numpy().tobytes()).hexdigest()


def test_same_seed_same_bytes_and_other_seed_differs():
    a, b = ClutteredDigits("val", SMALL), ClutteredDigits("val", SMALL)
    assert _digest(a) == _digest(b)
    c = ClutteredDigits("val", SMALL, seed=4)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.images, ClutteredDigits("train", SMALL).images[:20])  # splits differ


def test_dataset_shapes_and_boxes_inside_image():
    ds = ClutteredDigits("train", SMALL)
    x, y = ds[0]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and 0 <= y < 10
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (40, 3, 48, 48)
    x0, y0, x1, y1 = ds.boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 48).all() and (y1 <= 48).all()
    assert ((x1 - x0) >= 4).all() and ((y1 - y0) >= 4).all()
    assert torch.allclose(ClutteredDigits.denormalize(x), ds.images[0].float() / 255, atol=1e-5)


def test_digit_pixels_lie_in_the_box_and_the_box_is_tight():
    digits, labels, _, photos = _sources("val")
    cfg = DigitsConfig(resolution=64, clutter=0)
    rng = np.random.default_rng(0)
    for k in range(20):
        image, background, (x0, y0, x1, y1) = render_example(rng, digits[k], photos[k % 2], cfg)
        changed = np.abs(image.astype(int) - background.astype(int)).max(-1) > 0
        ys, xs = np.nonzero(changed)
        assert len(xs) > 20
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        # tight: the changed pixels reach (within the faintest antialiased rim) every side of the box
        assert xs.min() - x0 <= 1 and x1 - 1 - xs.max() <= 1 and ys.min() - y0 <= 1 and y1 - 1 - ys.max() <= 1


def test_export_image_folder_reads_back_with_timm(tmp_path):
    cfg = DigitsConfig(resolution=32, num_train=20, num_val=10, digit_size=(16, 24))
    root = export_image_folder(tmp_path / "digits", cfg)
    assert len(list((root / "train").rglob("*.png"))) == 20 and (root / "val_boxes.csv").is_file()
    train, val = image_folder_datasets(root, (3, 32, 32), augment=False)
    assert len(train) == 20 and len(val) == 10 and len(train.reader.class_to_idx) == 10
    x, y = val[0]
    assert x.shape == (3, 32, 32)
