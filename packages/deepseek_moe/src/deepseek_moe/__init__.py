"""deepseek_moe."""

__version__ = "0.1.0"
