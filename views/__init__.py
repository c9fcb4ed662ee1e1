"""Pyramid views, installed as ``approvalrules.views`` (top-level ``views/`` in the checkout).

The app scans this package by its dotted name; see ``approvalrules.app``.
"""
