"""Thin DVC stage entry points: read params, call ip/, write outputs."""
