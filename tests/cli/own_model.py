"""A researcher's own models, defined outside the package: the module source the CLI tests write into
tmp_path, and the bad-input rows every CLI's table gets for a model spec that cannot be loaded."""

# a 2-block ViT of timm.layers.Attention (head analysis applies) with its input size in pretrained_cfg, and a
# conv net without one whose MACs are counted by hand: 3x3 conv 3->8, stride 2, on 32x32 px -> 8x16x16
# (8*16*16 * 3*3*3 = 55,296), then a linear layer 2048 -> 5 (10,240): 65,536 in all
TOY_MODELS = '''
import torch
import torch.nn as nn
from timm.layers import Attention


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=heads)

    def forward(self, x):
        return x + self.attn(self.norm(x))


class ToyViT(nn.Module):
    num_prefix_tokens = 1

    def __init__(self, num_classes, dim=32, heads=4, patch=8, img_size=32):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (img_size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(Block(dim, heads), Block(dim, heads))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.pretrained_cfg = {"input_size": (3, img_size, img_size)}

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def make_vit(num_classes=10, pretrained=False, img_size=32):
    assert pretrained is False
    return ToyViT(num_classes, img_size=img_size)


def make_digits_vit(num_classes=10):   # the cluttered digits' 64 px
    return ToyViT(num_classes, img_size=64)


class ToyConvNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(8 * 16 * 16, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make_convnet(num_classes=5):
    return ToyConvNet(num_classes)
'''
TOY_CONVNET_MACS = 8 * 16 * 16 * 3 * 3 * 3 + 8 * 16 * 16 * 5

# factories that fail each in its own way (the `bad` fixture writes them as factories.py and broken.py)
BAD_FACTORIES = '''
import torch

NOT_CALLABLE = 3


def linear(num_classes=2):
    return torch.nn.Linear(3, num_classes)


def raises(num_classes=2):
    raise ValueError("width must be even\\nsecond line of the message")


def returns_dict(num_classes=2):
    return {"weights": None}
'''
BROKEN_MODULE = 'raise RuntimeError("broken on import")\n'


def own_model_rows(rest: list, weights: bool = True) -> list:
    """(argv, needle) rows: `--model SPEC` + `rest` for every way a model spec fails (`weights`: the command
    takes --weights, and `pretrained` is refused for a factory)."""
    rows = [
        ("{factories_py}", "names no factory: give it after a colon"),
        ("no_such_package_4821.models:make", "no module named 'no_such_package_4821'"),
        ("{tmp}/nowhere/net.py:make", "nowhere/net.py does not exist"),
        ("{broken_py}:make", "broken.py raised RuntimeError: broken on import"),
        ("{factories_py}:linaer", "has no 'linaer' (model "),
        ("{factories_py}:NOT_CALLABLE", "is not callable (it is of type int)"),
        ("{factories_py}:raises", "factories.py:raises raised ValueError: width must be even"),
        ("{factories_py}:returns_dict", "returned a dict, not a torch.nn.Module"),
    ]
    table = [(["--model", spec] + rest, needle) for spec, needle in rows]
    if weights:
        table.append((["--model", "{factories_py}:linear"] + rest + ["--weights", "pretrained"],
                      "--weights pretrained is for timm models"))
    return table
