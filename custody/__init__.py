"""custody: body-worn-camera docking daemon and evidence vault."""

__version__ = "0.1.0"
