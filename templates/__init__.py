"""Chameleon templates and static files, addressed as ``approvalrules.templates:...``.

This folder lives at the top level of the checkout and installs as
``approvalrules.templates``; the ``__init__.py`` makes it a package so that
asset specs resolve the same way from a checkout and from a wheel.
"""
