"""Benchmarks of d3prefine (not part of the installed package): ``python -m benchmarks.accuracy``
and ``python -m benchmarks.speed`` write ``<out>.json`` and ``<out>.md``; see ``benchmarks/README.md``."""
