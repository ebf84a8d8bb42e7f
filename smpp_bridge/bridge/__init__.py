"""The sender daemon: queue in, SMPP through the pool, events out."""
