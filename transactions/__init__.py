"""transactions: StartTransaction, StopTransaction, MeterValues, StatusNotification.

``handlers.py`` answers them; ``starts.py`` decides a start (one transaction per connector,
a tag's concurrent sessions in ``tag_sessions.py``); ``repository.py`` owns the documents;
``natural_keys.py`` and ``meter_samples.py`` make retransmissions find what they stored;
``checks.py`` flags what a charger reports that cannot be right (docs/bad-input.md).
"""
