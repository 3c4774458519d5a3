"""Neutral code every room may use: the error family and the one photo check. Imports no app."""
