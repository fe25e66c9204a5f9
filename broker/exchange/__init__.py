"""The exchange: a submission validated, pseudonymised, sealed and routed (`submission`), delivered
and fetched (`delivery`), replayed by its Idempotency-Key (`idempotency`), and the two rules every
operation applies: need-to-know (`need_to_know`) and restrictions of processing (`restrictions`).
"""
