"""Key material: master key loading, envelope encryption, pseudonyms and signing keys.

This package does not import Flask or the database: the broker persists what it returns, and a
verifier can use it on its own.
"""
