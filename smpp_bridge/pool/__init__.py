"""The bind pool: many binds to one or more SMSCs, receipts correlated, inbound reassembled."""
