"""Entropy models, coding tables and the range coder."""
