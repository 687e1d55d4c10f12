"""Runnable examples for DMS developers."""
