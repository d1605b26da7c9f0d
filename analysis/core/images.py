"""Image sources for the measurement CLIs: a folder of images, or an offline sample set.

Both yield `(images, labels)` batches already transformed with the model's own timm
eval transform (`timm.data.resolve_data_config` + `create_transform`); labels are -1
where unknown.

- `ImageFolderSource(root)`: ImageNet-val layout (one subfolder per class, sorted names
  -> class index, which is timm's ImageNet index for synset folders) or a flat folder
  (unlabelled). Unreadable files are skipped and counted (`.num_skipped`); a missing or
  empty folder, or one without a single readable image, is a `UserError`.
- `SampleImages()`: no data needed. Random crops of the two real photos shipped with
  scikit-learn (`load_sample_images`), deterministic from the seed: enough for smoke runs,
  notebooks and CI, not a substitute for ImageNet.
- `load_image(path)` + `view_image(model, image)`: one image of your own as the model sees it
  (`ImageView`), with the map from its pixels to the model's input pixels (for query points).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import timm.data
import torch
import torch.nn as nn
from PIL import Image, ImageOps
from sklearn.datasets import load_sample_images

from .distributed import World
from .errors import UserError, not_a_command

__all__ = ["ImageFolderSource", "SampleImages", "Batches", "model_transform", "to_rgb", "IMAGE_EXTENSIONS",
           "load_image", "view_image", "ImageView"]

_ROUND = 32  # files each process decodes before the world compares which were readable
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def model_transform(model: nn.Module, input_size: Optional[tuple] = None):
    """timm's eval transform for `model` (its pretrained config: resize, crop, mean/std)."""
    cfg = timm.data.resolve_data_config({"input_size": input_size} if input_size else {}, model=model)
    return timm.data.create_transform(**cfg, is_training=False)


class Batches:
    """Re-iterable (images, labels) batches: each pass decodes the images again, so memory
    stays at one batch (wrap in `list(...)` to keep decoded images for repeated passes)."""

    def __init__(self, items: Callable[[], Iterator[tuple[torch.Tensor, int]]], batch_size: int):
        self._items, self.batch_size = items, batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = [], []
        for img, label in self._items():
            images.append(img)
            labels.append(label)
            if len(images) == self.batch_size:
                yield torch.stack(images), torch.tensor(labels)
                images, labels = [], []
        if images:
            yield torch.stack(images), torch.tensor(labels)


class ImageFolderSource:
    """Images under `root` (class subfolders or flat), in a seeded random order.

    Args:
        root: the folder.
        num_images: how many readable images to yield (None: all).
        seed: fixes which images are used and their order (same seed -> same images).
    """

    def __init__(self, root: str | os.PathLike, num_images: Optional[int] = None, seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"image folder {self.root} does not exist")
        subdirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        # every class subfolder keeps its index, empty ones too (as torchvision's find_classes): skipping an
        # empty one would shift every later label (timm's ImageNet index for synset folders)
        self.classes = [p.name for p in subdirs] if any(any(_image_files(p)) for p in subdirs) else []
        if self.classes:
            files = [(f, i) for i, c in enumerate(self.classes) for f in _image_files(self.root / c)]
        else:
            files = [(f, -1) for f in _image_files(self.root)]
        if not files:
            raise UserError(f"image folder {self.root} contains no image files "
                            f"({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
        order = np.random.default_rng(seed).permutation(len(files))
        self.files = [files[i] for i in order]
        self.num_images = num_images
        self.num_skipped = 0
        self.num_used = 0
        if not any(_readable(path) for path, _ in self.files):  # stops at the first readable one
            raise UserError(f"no readable image in {self.root} ({len(self.files)} unreadable files)")

    @property
    def labelled(self) -> bool:
        return bool(self.classes)

    def _items(self, transform, world: World) -> Iterator[tuple[torch.Tensor, int]]:
        """This process's share of the first `num_images` readable files (in the seeded order).

        Files are dealt round-robin by position; each process decodes only its own, and the
        readability of each round is shared, so every process agrees on which files count: the
        union over processes is exactly what one process would use. `num_used` / `num_skipped`
        count the whole world's images.
        """
        self.num_skipped = self.num_used = 0
        limit = len(self.files) if self.num_images is None else self.num_images
        chunk = _ROUND * world.size
        for start in range(0, len(self.files), chunk):
            files = self.files[start:start + chunk]
            mine = {i: _load(path) for i, (path, _) in enumerate(files) if i % world.size == world.rank}
            readable = [False] * len(files)
            for flags in world.gather({i: img is not None for i, img in mine.items()}):
                for i, ok in flags.items():
                    readable[i] = ok
            for i, (_, label) in enumerate(files):
                if self.num_used >= limit:
                    return
                if not readable[i]:
                    self.num_skipped += 1
                    continue
                self.num_used += 1
                if i in mine:
                    yield transform(mine[i]), label
        if self.num_used == 0:
            raise UserError(f"no readable image in {self.root} ({self.num_skipped} unreadable files skipped)")

    def batches(self, model: nn.Module, batch_size: int, input_size: Optional[tuple] = None,
                world: Optional[World] = None) -> Batches:
        """(images, labels) batches in `model`'s eval transform (this process's share under `world`)."""
        transform = model_transform(model, input_size)
        return Batches(lambda: self._items(transform, world or World()), batch_size)

    def describe(self) -> str:
        return str(self.root)


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB without losing what `convert("RGB")` loses: 16-bit and 32-bit integer greyscale
    (PNG `I;16`, `I`) is rescaled from its full range instead of clipped at 255, and transparent
    pixels (alpha, or a palette's transparent colour) are composited onto black, the value a
    model sees for "nothing there", instead of showing whatever colour they hide."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError("the image has non-finite (NaN or infinite) pixel values")
        top = 65535.0 if im.mode.startswith("I;16") or (im.mode == "I" and a.max(initial=0) <= 65535) else a.max()
        a = np.clip(np.round(a / max(top, 1e-12) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im).convert("RGB")
    return im.convert("RGB")


def _load(path: Path) -> Optional[Image.Image]:
    """The decoded RGB image (`to_rgb`) the right way up (its EXIF orientation applied, as a viewer shows
    it), or None when the file cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # PIL's remarks on a file (EXIF, palettes) are not the user's to read
            warnings.simplefilter("error", Image.DecompressionBombWarning)   # a bomb is not decoded: skipped
            with Image.open(path) as im:
                if Image.MAX_IMAGE_PIXELS is not None and im.size[0] * im.size[1] > Image.MAX_IMAGE_PIXELS:
                    return None
                return to_rgb(ImageOps.exif_transpose(im))
    except UserError:
        raise                 # decoded, and refused (e.g. a float image with NaN)
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None


def load_image(path: str | os.PathLike) -> Image.Image:
    """The image at `path` in 8-bit RGB (`to_rgb`); a missing, unreadable or non-image file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist" if not path.exists() else f"image {path} is not a file")
    limit = Image.MAX_IMAGE_PIXELS
    try:  # the header's size, read with PIL's own bomb check off so that the refusal can say how large
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            pixels = im.size[0] * im.size[1]
    except (OSError, ValueError):
        pixels = 0
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if limit is not None and pixels > limit:
        raise UserError(f"image {path} has {pixels:,} pixels, more than the {Image.MAX_IMAGE_PIXELS:,} an image may "
                        "have (a decompression bomb?)")
    image = _load(path)
    if image is None:
        raise UserError(f"cannot read {path} as an image ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
    return image


@dataclass
class ImageView:
    """One image as a model sees it.

    `input` is [1, 3, h, w], normalised with the model's mean / std; `pixels` is [h, w, 3] in [0, 1],
    the same pixels for drawing. `box` (left, top, right, bottom) is the region of the original
    image (`size`: W, H) that was scaled onto the h x w input.
    """

    input: torch.Tensor
    pixels: torch.Tensor
    box: tuple[float, float, float, float]
    size: tuple[int, int]

    def to_input(self, x: float, y: float) -> tuple[float, float]:
        """(y, x) in input pixels of the pixel (x, y) of the original image (its centre, x + 0.5);
        a point outside the image or outside the region the model sees is a UserError."""
        W, H = self.size
        if not (0 <= x < W and 0 <= y < H):
            raise UserError(f"query ({x:g}, {y:g}) is outside the image ({W} x {H} px)")
        left, top, right, bottom = self.box
        h, w = self.pixels.shape[:2]
        u, v = (x + 0.5 - left) * w / (right - left), (y + 0.5 - top) * h / (bottom - top)
        if not (0 <= u < w and 0 <= v < h):
            raise UserError(f"query ({x:g}, {y:g}) is outside the centre crop the model sees: x in "
                            f"[{left:.0f}, {right:.0f}), y in [{top:.0f}, {bottom:.0f})")
        return v, u


_RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
             "lanczos": Image.LANCZOS}


def view_image(model: nn.Module, image: Image.Image, input_size: Optional[tuple] = None) -> ImageView:
    """`image` in `model`'s eval geometry, as timm's default eval transform has it: scaled so that
    the input is the centre `crop_pct` of its shorter side, centre-cropped, normalised. Done as one
    resampling of the crop box, so that every input pixel maps back to the original exactly."""
    cfg = timm.data.resolve_data_config({"input_size": input_size} if input_size else {}, model=model)
    _, h, w = cfg["input_size"]
    W, H = image.size
    scale = max(w / W, h / H) / cfg["crop_pct"]
    bw, bh = w / scale, h / scale
    box = ((W - bw) / 2, (H - bh) / 2, (W + bw) / 2, (H + bh) / 2)
    crop = image.resize((w, h), resample=_RESAMPLE.get(cfg["interpolation"], Image.BICUBIC), box=box)
    pixels = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0)
    mean, std = torch.tensor(cfg["mean"]), torch.tensor(cfg["std"])
    x = ((pixels - mean) / std).permute(2, 0, 1)[None].contiguous()
    return ImageView(input=x, pixels=pixels, box=box, size=(W, H))


def _readable(path: Path) -> bool:
    return _load(path) is not None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


class SampleImages:
    """`num_images` seeded random crops (10-100% of the area, aspect 3/4..4/3) of
    scikit-learn's two sample photos; offline, unlabelled (labels -1)."""

    labelled = False
    num_skipped = 0

    def __init__(self, num_images: int = 128, seed: int = 0):
        self.num_images, self.seed = num_images, seed
        self.num_used = 0

    def crops(self) -> Iterator[Image.Image]:
        photos = load_sample_images().images
        rng = np.random.default_rng(self.seed)
        for i in range(self.num_images):
            photo = photos[i % len(photos)]
            H, W = photo.shape[:2]
            area = rng.uniform(0.1, 1.0) * H * W
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            h = int(min(H, round(np.sqrt(area / aspect))))
            w = int(min(W, round(np.sqrt(area * aspect))))
            y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            yield Image.fromarray(photo[y:y + h, x:x + w])

    def batches(self, model: nn.Module, batch_size: int, input_size: Optional[tuple] = None,
                world: Optional[World] = None) -> Batches:
        """(images, labels = -1) batches in `model`'s eval transform; under `world`, this process's
        share (crop i goes to process i mod size; `num_used` counts the whole world's)."""
        transform = model_transform(model, input_size)
        world = world or World()

        def items():
            self.num_used = 0
            for i, img in enumerate(self.crops()):
                self.num_used += 1
                if i % world.size == world.rank:
                    yield transform(img), -1
        return Batches(items, batch_size)

    def describe(self) -> str:
        return f"sklearn sample-image crops (seed {self.seed})"


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
