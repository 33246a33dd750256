"""Reproductions registered with `paperkit reproduce`."""

REPRODUCTIONS = []
