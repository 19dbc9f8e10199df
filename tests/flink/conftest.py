"""Flink job tests: run by `.venv-flink/bin/pytest tests/flink` (the main venv has no pyflink).

One JVM per test session: pyflink starts its gateway JVM (and each job's mini cluster inside it) on
first use and keeps it for the process, so every job here after the first costs seconds, not tens.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
