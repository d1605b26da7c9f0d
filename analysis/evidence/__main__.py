"""`python -m analysis.evidence`: a library room, not a command; says so and names the commands."""
from ..core.errors import not_a_command

raise SystemExit(not_a_command(__spec__.parent))
