"""The public names of analysis.core: each module's `__all__` (read lazily by `analysis._lazy`)."""
from .errors import *
from .files import *
from .tables import *
from .paths import *
from .models import *
from .distributed import *
from .runtime import *
from .stages import *
from .names import *
from .predictor_sets import *
from .images import *
from .intervals import *
from .reference import *
from .plotting import *
from .memory import *
from .gpu_evidence import *
