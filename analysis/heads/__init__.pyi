"""The public names of analysis.heads: each module's `__all__` (read lazily by `analysis._lazy`)."""
from .families import *
from .layers import *
from .attention import *
from .metrics import *
from .similarity import *
from .importance import *
from .ablation import *
from .maps import *
from .plots import *
