"""GridLink benchmarks: ``python -m bench`` (or ``make bench``). Never part of ``make test``.

Each benchmark prints a table and writes it to ``bench/results/<name>.md`` with the machine,
the versions and the database used; comparisons (GridLink vs a bare WebSocket server, vs a
single-process baseline CSMS) are always measured in the same run.
"""
