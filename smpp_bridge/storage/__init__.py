"""Durable backends, beside the pipeline: the SQLite and Redis implementations of the stores
the pool and the daemon use (correlation and parking, the message store, work queues), the
``ClosableStore`` base they share and the SQLite call helper.

Import the backend you need from its module (``storage.queues``, ``storage.messages_sqlite``,
``storage.correlation_redis``...): this package imports nothing itself, so loading one backend
does not load the others (nor the layers that define the protocols they implement).
"""
