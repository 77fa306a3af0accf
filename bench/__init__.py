"""noisybench: the ``bench`` command, the shared trainer, models and protocols."""

__version__ = "0.1.0"
