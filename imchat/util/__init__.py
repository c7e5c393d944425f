"""Leaf helpers: no Flask, no database."""
