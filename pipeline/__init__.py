"""Real-time analytics pipeline: the code every stage runs, on AWS and locally."""

__version__ = "0.1.0"
