"""cmrl: offline RL with consistency-model policies."""

__version__ = "0.1.0"
