"""The public names of analysis.evidence: each module's `__all__` (read lazily by `analysis._lazy`)."""
from .power import *
from .verdicts import *
from .provenance import *
from .registry import *
from .result_tables import *
from .plots import *
from .claims import *
from .replication import *
