"""Datasets of the ablation lab: offline "cluttered digits" and real image folders.

Cluttered digits (micro scale): real handwritten digits from scikit-learn's `load_digits`
(8x8, 0..16 ink), upscaled and pasted at a random place and size onto random crops of the
real photos shipped with scikit-learn (`load_sample_images`), plus a few fragments of other
digits as clutter. Ten classes, a ground-truth box per image (so Grad-CAM localisation can be
scored), generated deterministically from a seed with nothing downloaded. Train and val use
disjoint digit writers (the first 80% / last 20% of `load_digits`) and disjoint photo halves.
With `num_tune` > 0 a third split, "tune", takes the writers 70-80% of `load_digits` (train keeps
the first 70%): images for choosing hyperparameters that share no source digit with train or val.
`sources` names each image's source digit (its `load_digits` index), the unit a bootstrap clusters on.

    >>> train = ClutteredDigits("train", seed=0)     # 64x64 px, 4000 images
    >>> image, label = train[0]                      # normalised float tensor, int
    >>> train.boxes[0]                               # (x0, y0, x1, y1), end-exclusive pixels

Real data (full scale): an ImageNet-layout folder `DIR/train/<class>/*`, `DIR/val/<class>/*`,
read with timm's `create_dataset` and its eval / train transforms (`create_transform`).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.datasets import load_digits, load_sample_images
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_dataset, create_transform

from ..core import names
from ..core.errors import UserError, not_a_command
from ..core.tables import write_csv

__all__ = ["DigitsConfig", "ClutteredDigits", "render_example", "export_image_folder", "image_folder_datasets",
           "DIGITS_NAME", "NUM_CLASSES"]

DIGITS_NAME = names.DIGITS_NAME
NUM_CLASSES = 10
_SPLITS = ("train", "val", "tune")
_TUNE_WRITERS = (0.7, 0.8)  # the tune split's share of `load_digits` (carved from the train writers)
_MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)


@dataclass(frozen=True)
class DigitsConfig:
    """Everything that determines the bytes of a cluttered-digits split."""

    resolution: int = 64
    num_train: int = 4000
    num_val: int = 1000
    num_tune: int = 0  # images of the "tune" split (0: no tune split; train keeps 80% of the writers)
    digit_size: Optional[Tuple[int, int]] = None  # pasted digit's side, px (inclusive); default 7/16..11/16 of image
    clutter: int = 3  # fragments (a quarter of the side) of other digits per image
    jitter: float = 1.0  # digit offset from the centre, as a share of the free space (1: anywhere)
    seed: int = 0

    def __post_init__(self):
        if self.resolution < 16:
            raise UserError(f"resolution {self.resolution} is too small (at least 16 px)")
        if self.digit_size is None:
            object.__setattr__(self, "digit_size", (self.resolution * 7 // 16, self.resolution * 11 // 16))
        object.__setattr__(self, "digit_size", tuple(self.digit_size))
        if not 0.0 <= self.jitter <= 1.0:
            raise UserError(f"jitter {self.jitter} must lie in [0, 1]")
        lo, hi = self.digit_size
        if not 4 <= lo <= hi <= self.resolution:
            raise UserError(f"digit_size {self.digit_size} must satisfy 4 <= min <= max <= resolution")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["digit_size"] = list(self.digit_size)
        return d


def _sources(split: str, tune: bool = False):
    """(digit images 8x8 float 0..1, labels, their `load_digits` indices, photos list of HxWx3 uint8) of one
    split; `tune`: a tune split exists, so train keeps the first 70% of the writers instead of 80%."""
    digits = load_digits()
    n = len(digits.images)
    lo, hi = (int(n * f) for f in _TUNE_WRITERS)
    idx = np.arange(*{"train": (0, lo if tune else hi), "tune": (lo, hi), "val": (hi, n)}[split])
    photos = []
    for photo in load_sample_images().images:  # china.jpg, flower.jpg; tune crops the val half (unseen photos)
        half = photo.shape[1] // 2
        photos.append(photo[:, :half] if split == "train" else photo[:, half:])
    return digits.images[idx] / 16.0, digits.target[idx], idx, photos


def _resize(a: np.ndarray, side: int) -> np.ndarray:
    """Alpha map of a digit in [0, 1], bilinearly upscaled to side x side and sharpened.

    `load_digits` ink is blurry (0..16 counts of a 4x4 pooling); the contrast stretch turns
    it into strokes with exactly-zero alpha outside them. PIL resizing: deterministic bytes.
    """
    img = Image.fromarray(np.round(a * 255).astype(np.uint8), mode="L")
    alpha = np.asarray(img.resize((side, side), Image.BILINEAR), dtype=np.float32) / 255.0
    return np.clip((alpha - 0.3) * 2.5, 0.0, 1.0)


def _crop(rng: np.random.Generator, photo: np.ndarray, side: int) -> np.ndarray:
    """A random square crop (random scale, then resized to side) of a photo, as float 0..255."""
    h, w = photo.shape[:2]
    s = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
    y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    img = Image.fromarray(photo[y:y + s, x:x + s]).resize((side, side), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _paste(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, ink: np.ndarray) -> None:
    h, w = alpha.shape
    region = canvas[y:y + h, x:x + w]
    region[:] = region * (1 - alpha[..., None]) + ink * alpha[..., None]


def _ink(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """Ink colour contrasting with the local background: light on dark, dark on light."""
    light = background.mean() < 128
    base = rng.uniform(200, 255, 3) if light else rng.uniform(0, 55, 3)
    return base.astype(np.float32)


def render_example(rng: np.random.Generator, digit: np.ndarray, photo: np.ndarray, cfg: DigitsConfig,
                   fragments: Tuple[np.ndarray, ...] = ()):
    """One image: (uint8 HxWx3 image, uint8 background before the digit, box (x0, y0, x1, y1)).

    The box is the tight, end-exclusive box of the pasted digit's nonzero ink; clutter
    fragments are pasted first, so the digit is never covered.
    """
    n = cfg.resolution
    canvas = _crop(rng, photo, n)
    for frag in fragments:
        side = int(rng.integers(cfg.digit_size[0], cfg.digit_size[1] + 1))
        alpha = _resize(frag, side)
        q = side // 2  # a random quarter-size piece of another digit
        fy, fx = int(rng.integers(0, side - q + 1)), int(rng.integers(0, side - q + 1))
        piece = alpha[fy:fy + q, fx:fx + q]
        x, y = int(rng.integers(0, n - q + 1)), int(rng.integers(0, n - q + 1))
        _paste(canvas, piece, x, y, _ink(rng, canvas[y:y + q, x:x + q]))
    canvas = np.round(canvas)
    background = canvas.astype(np.uint8)
    side = int(rng.integers(cfg.digit_size[0], cfg.digit_size[1] + 1))
    alpha = _resize(digit, side)
    lo = int((n - side) * (1 - cfg.jitter) // 2)
    x, y = int(rng.integers(lo, n - side - lo + 1)), int(rng.integers(lo, n - side - lo + 1))
    _paste(canvas, alpha, x, y, _ink(rng, canvas[y:y + side, x:x + side]))
    ys, xs = np.nonzero(alpha > 0)
    box = (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1)
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8), background, box


class ClutteredDigits(torch.utils.data.Dataset):
    """Cluttered digits as a map-style dataset: `ds[i] -> (normalised 3xHxW float, label)`.

    Attributes:
        images: uint8 tensor (N, 3, H, W), the raw bytes (identical for identical config).
        labels: int64 tensor (N,).
        boxes: int64 tensor (N, 4), ground-truth digit boxes (x0, y0, x1, y1), end-exclusive.
        sources: int64 tensor (N,), the `load_digits` index of each image's digit (images sharing a
            source digit are not independent: bootstraps over images cluster on it).
    Pixels are normalised with ImageNet mean / std, as timm's transforms do for real data.
    """

    classes = [str(i) for i in range(NUM_CLASSES)]

    def __init__(self, split: str = "train", config: Optional[DigitsConfig] = None, **overrides):
        if split not in _SPLITS:
            raise UserError(f"split must be one of {_SPLITS}, got {split!r}")
        cfg = config or DigitsConfig()
        if overrides:
            cfg = DigitsConfig(**{**asdict(cfg), **overrides})
        if split == "tune" and cfg.num_tune <= 0:
            raise UserError("this configuration has no tune split (num_tune = 0)")
        self.split, self.config = split, cfg
        digits, targets, indices, photos = _sources(split, tune=cfg.num_tune > 0)
        rng = np.random.default_rng([cfg.seed, _SPLITS.index(split)])
        count = {"train": cfg.num_train, "val": cfg.num_val, "tune": cfg.num_tune}[split]
        images = np.empty((count, cfg.resolution, cfg.resolution, 3), np.uint8)
        labels = np.empty(count, np.int64)
        boxes = np.empty((count, 4), np.int64)
        sources = np.empty(count, np.int64)
        for i in range(count):
            k = int(rng.integers(len(digits)))
            sources[i] = indices[k]
            frags = tuple(digits[j] for j in rng.integers(len(digits), size=cfg.clutter))
            photo = photos[int(rng.integers(len(photos)))]
            images[i], _, boxes[i] = render_example(rng, digits[k], photo, cfg, frags)
            labels[i] = targets[k]
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.from_numpy(labels)
        self.boxes = torch.from_numpy(boxes)
        self.sources = torch.from_numpy(sources)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return (self.images[index].float() / 255 - _MEAN) / _STD, int(self.labels[index])

    @staticmethod
    def denormalize(x: torch.Tensor) -> torch.Tensor:
        """Inverse of the normalisation: float images in [0, 1] for display."""
        return (x * _STD.to(x) + _MEAN.to(x)).clamp(0, 1)


def export_image_folder(root: str | os.PathLike, config: Optional[DigitsConfig] = None) -> Path:
    """Write both splits as PNGs in ImageNet layout (`root/{train,val}/<class>/NNNNN.png`).

    Also writes `root/{split}_boxes.csv` (file, label, x0, y0, x1, y1), so `--data root`
    CLIs (training, head similarity, ...) can read the same images as the micro suite.
    """
    root = Path(root)
    cfg = config or DigitsConfig()
    for split in _SPLITS if cfg.num_tune > 0 else _SPLITS[:2]:
        ds = ClutteredDigits(split, cfg)
        rows = []
        for c in ds.classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(len(ds)):
            rel = f"{split}/{int(ds.labels[i])}/{i:05d}.png"
            Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(root / rel)
            rows.append((rel, int(ds.labels[i]), *map(int, ds.boxes[i])))
        write_csv(pd.DataFrame(rows, columns=["file", "label", "x0", "y0", "x1", "y1"]),
                  root / f"{split}_boxes.csv")
    return root


def image_folder_datasets(root: str | os.PathLike, input_size: Tuple[int, int, int], *, mean=IMAGENET_DEFAULT_MEAN,
                          std=IMAGENET_DEFAULT_STD, interpolation: str = "bicubic", crop_pct: float = 0.875,
                          augment: bool = True):
    """(train, val) timm datasets of an ImageNet-layout folder, with timm's transforms.

    Class indices follow the sorted `train/` subfolder names for both splits.
    Train uses timm's training transform (random-resized crop + flip) when `augment`, else the
    eval transform (resize + centre crop); val always uses the eval transform.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist")
    for split in _SPLITS[:2]:
        if not (root / split).is_dir():
            raise UserError(f"data folder {root} has no {split}/ subfolder (expected ImageNet layout "
                            f"{root}/{split}/<class>/*.jpg)")
    common = dict(input_size=input_size, mean=mean, std=std, interpolation=interpolation)
    # one class index per train/ subfolder, shared by both splits (even when a split lacks a class)
    class_map = {p.name: i for i, p in enumerate(sorted(q for q in (root / "train").iterdir() if q.is_dir()))}
    out = []
    for split in _SPLITS[:2]:
        train = split == "train" and augment
        tf = create_transform(**common, is_training=train, **({} if train else {"crop_pct": crop_pct}))
        ds = create_dataset("", root=str(root), split=split, is_training=split == "train", transform=tf,
                            class_map=class_map)
        if len(ds) == 0:
            raise UserError(f"data folder {root / split} holds no images")
        out.append(ds)
    return tuple(out)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
