"""Benchmarks: one script per question, each running the peers and Crossway side by side.

A package so that scripts can share ``benchmarks._common`` and the apps in ``benchmarks.apps``
(run them as ``python -m benchmarks.<name>`` or ``python benchmarks/<name>.py``).
"""
