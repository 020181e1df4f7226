"""The test suites and their kits (labkit, pipekit, botkit, chaoskit)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
