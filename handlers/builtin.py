"""Imports every handler module so their names are registered with the registry."""
from . import help_request, verification, welcome  # noqa: F401
from . import announcements, forms, profile, search  # noqa: F401
from . import mydata, voice  # noqa: F401
from . import activities, clubs, points, volunteers  # noqa: F401
