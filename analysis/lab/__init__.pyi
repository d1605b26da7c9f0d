"""The public names of analysis.lab: each module's `__all__` (read lazily by `analysis._lazy`)."""
from .augment import *
from .datasets import *
from .train import *
from .recipes import *
from .cache import *
from .checkpoints import *
from .gradcam import *
from .experiments import *
from .replicates import *
from .single_head_designs import *
from .suites import *
from .plots import *
from .frontier import *
from .tuning import *
