"""polydiff: five domain applications on one diffusion backbone."""

__version__ = "0.1.0"
