"""Imports every handler module so their names are registered with the registry."""
from . import help_request, verification, welcome  # noqa: F401
from . import mydata, voice  # noqa: F401
from . import activities, points, volunteers  # noqa: F401
