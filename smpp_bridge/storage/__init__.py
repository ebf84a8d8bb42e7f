"""Durable backends, beside the pipeline: the SQLite and Redis implementations of the stores
the pool and the daemon use (correlation and parking, the message store, work queues), and what
they share: ``ClosableStore`` (closing), ``sqlite_calls`` (opening an SQLite file the one way,
its setting checks, calling SQLite from async code), ``redis_client`` (a client from a URL)
and ``correlation_base`` (the order of a correlation batch call).

Import the backend you need from its module (``storage.queues``, ``storage.messages_sqlite``,
``storage.correlation_redis``...): this package imports nothing itself, so loading one backend
does not load the others (nor the layers that define the protocols they implement).
"""
