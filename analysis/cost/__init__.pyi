"""The public names of analysis.cost: each module's `__all__` (read lazily by `analysis._lazy`)."""
from .counter import *
from .op_rules import *
from .model_cost import *
from .latency import *
from .timing import *
from .breakdown import *
from .throughput import *
from .roofline import *
from .macro_design import *
from .variant_table import *
from .plots import *
from .zoo_figure import *
from .zoo import *
