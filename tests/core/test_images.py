"""Image sources: labels from class subfolders, flat folders, skipped files, seeded sample crops; one image
of your own as a model sees it."""
import re

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from analysis.core.errors import UserError
from analysis.core.images import ImageFolderSource, SampleImages, load_image, model_transform, view_image


@pytest.fixture(scope="module")
def model():
    return timm.create_model("deit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3)


def _png(path, seed):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path)


def test_class_subfolders_give_labels_and_skip_unreadable(tmp_path, model):
    for i, c in enumerate(["n02", "n01"]):
        (tmp_path / c).mkdir()
        _png(tmp_path / c / "a.png", i)
    (tmp_path / "n01" / "bad.jpg").write_bytes(b"nope")
    src = ImageFolderSource(tmp_path, seed=0)
    assert src.labelled and src.classes == ["n01", "n02"]
    batches = src.batches(model, 8, input_size=(3, 32, 32))
    first, second = list(batches), list(batches)  # re-iterable
    (x, y), = first
    assert x.shape == (2, 3, 32, 32) and sorted(y.tolist()) == [0, 1]
    assert torch.equal(x, second[0][0]) and src.num_skipped == 1 and src.num_used == 2


def test_an_empty_class_folder_keeps_its_label_index(tmp_path, model):
    """n01 (images), n02 (empty), n03 (images): n03's images are class 2, as in ImageNet's index, not 1."""
    for c in ("n01", "n02", "n03"):
        (tmp_path / c).mkdir()
    _png(tmp_path / "n01" / "a.png", 0)
    _png(tmp_path / "n03" / "b.png", 1)
    src = ImageFolderSource(tmp_path, seed=0)
    assert src.classes == ["n01", "n02", "n03"]
    assert sorted((p.name, label) for p, label in src.files) == [("a.png", 0), ("b.png", 2)]


def test_flat_folder_is_unlabelled_and_num_images_respected(tmp_path, model):
    for i in range(5):
        _png(tmp_path / f"{i}.png", i)
    src = ImageFolderSource(tmp_path, num_images=3, seed=1)
    (x, y), = list(src.batches(model, 4, input_size=(3, 32, 32)))
    assert not src.labelled and x.shape[0] == 3 and (y == -1).all()
    with pytest.raises(UserError, match="does not exist"):
        ImageFolderSource(tmp_path / "missing")


def test_sample_images_are_seeded(model):
    a = torch.cat([x for x, _ in SampleImages(3, seed=0).batches(model, 2, input_size=(3, 32, 32))])
    b = torch.cat([x for x, _ in SampleImages(3, seed=0).batches(model, 2, input_size=(3, 32, 32))])
    c = torch.cat([x for x, _ in SampleImages(3, seed=1).batches(model, 2, input_size=(3, 32, 32))])
    assert a.shape == (3, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)


def test_16_bit_and_transparent_images_convert_without_loss():
    from analysis.core.images import to_rgb
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369)  # 0 .. 65535
    rgb = np.asarray(to_rgb(Image.fromarray(ramp)))
    assert rgb.shape == (4, 4, 3) and rgb[..., 0].ravel().tolist() == [17 * i for i in range(16)]
    assert (np.asarray(Image.fromarray(ramp).convert("RGB"))[..., 0] == 255).mean() > 0.9  # what it fixes
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    assert np.asarray(to_rgb(pal)).tolist() == [[[0, 0, 0], [0, 255, 0]]]
    rgba = Image.fromarray(np.array([[[200, 100, 50, 255], [200, 100, 50, 0]]], np.uint8), mode="RGBA")
    assert np.asarray(to_rgb(rgba)).tolist() == [[[200, 100, 50], [0, 0, 0]]]


def test_view_image_is_timms_eval_view_with_an_exact_pixel_map(tmp_path):
    model = timm.create_model("deit_tiny_patch16_224", depth=1)  # crop_pct 0.9, 224 px
    a = np.zeros((200, 400, 3), np.uint8)
    a[:, 200:] = 255  # left half black, right half white
    view = view_image(model, Image.fromarray(a))
    assert view.input.shape == (1, 3, 224, 224) and view.pixels.shape == (224, 224, 3) and view.size == (400, 200)
    assert view.box == pytest.approx((110, 10, 290, 190))  # the centre 90% of the shorter side, centred
    assert (view.pixels[:, :110] == 0).all() and (view.pixels[:, 114:] == 1).all()  # the edge stays at the centre
    assert view.to_input(199.5, 99.5) == pytest.approx((112, 112))  # the image's centre is the input's
    assert view.to_input(110, 10) == pytest.approx((0.5 * 224 / 180, 0.5 * 224 / 180))
    for x, y, needle in ((400, 5, "outside the image"), (5, -1, "outside the image"),
                         (100, 100, "outside the centre crop the model sees: x in [110, 290)")):
        with pytest.raises(UserError, match=re.escape(needle)):
            view.to_input(x, y)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 10, 3), np.uint8)).resize((320, 240))
    ours, timms = view_image(model, photo).input, model_transform(model)(photo)[None]
    assert (ours - timms).abs().mean() < 0.02  # timm rounds its intermediate size; same view otherwise


def test_load_image_converts_and_refuses_what_is_not_an_image(tmp_path):
    Image.fromarray(np.full((4, 6), 7, np.uint8)).save(tmp_path / "grey.png")
    im = load_image(tmp_path / "grey.png")
    assert im.mode == "RGB" and im.size == (6, 4)
    (tmp_path / "text.jpg").write_text("not an image")
    for path, needle in ((tmp_path / "nope.png", "does not exist"), (tmp_path, "is not a file"),
                         (tmp_path / "text.jpg", "cannot read")):
        with pytest.raises(UserError, match=needle):
            load_image(path)


def test_exif_orientation_non_finite_pixels_and_decompression_bombs(tmp_path, monkeypatch):
    """A phone photo stored sideways (EXIF orientation 6) loads the right way up; a float TIFF of NaNs is
    refused, not read as black; an image over PIL's pixel limit is refused with its pixel count."""
    exif = Image.Exif()
    exif[0x0112] = 6                                   # rotate 90 degrees clockwise to display
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "sideways.jpg", exif=exif)
    assert load_image(tmp_path / "sideways.jpg").size == (20, 30)      # width 20, height 30 once rotated
    Image.fromarray(np.full((8, 8), np.nan, np.float32), mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(UserError, match="cannot read"):
        load_image(tmp_path / "nan.tif")
    _png(tmp_path / "big.png", 0)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(UserError, match="has 600 pixels, more than the 100"):
        load_image(tmp_path / "big.png")


def test_a_decompression_bomb_in_a_folder_is_skipped_without_a_warning(tmp_path, model, monkeypatch, recwarn):
    """issue 26: an image between PIL's pixel limit and twice it only warned (two lines on stderr) and was
    decoded; in a folder it is skipped like an unreadable file, silently; as --image it is refused."""
    _png(tmp_path / "small.png", 0)                                          # 600 pixels
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "bomb.png")   # 1200 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1100)                   # the model's 32 x 32 input fits
    src = ImageFolderSource(tmp_path, seed=0)
    (x, _), = list(src.batches(model, 4, input_size=(3, 32, 32)))
    assert x.shape[0] == 1 and src.num_skipped == 1 and src.num_used == 1
    assert not [(w.filename, w.lineno, str(w.message)) for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(UserError, match="has 1,200 pixels, more than the 1,100"):
        load_image(tmp_path / "bomb.png")
