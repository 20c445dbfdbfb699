"""Benchmarks for :mod:`pyramid_asgi_ws`: run ``python -m bench``.

Not part of the test suite; ``python -m bench --smoke`` is a seconds-long
run for CI.  See ``docs/benchmarks.rst``.
"""
