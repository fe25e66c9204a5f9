"""The append-only, tamper-evident audit log: entries, hash chain, Merkle tree, checkpoints.

A pure library (no Flask, no SQLAlchemy) so that a privacy officer's verifier can run it alone:

* `audit.logboek`: an entry's fields (Logboek Dataverwerkingen), ids and times, validated.
* `audit.entry`: canonical form (RFC 8785), chain and leaf hashes, sealing in batches.
* `audit.columns`: the search columns a database keeps beside an entry, derived from it.
* `audit.jcs`: the fast RFC 8785 serialiser behind it.
* `audit.merkle`: RFC 6962 Merkle tree, roots, inclusion and consistency proofs.
* `audit.proof`: the hashes and RFC 9162 proof verification alone.
* `audit.checkpoint`: C2SP checkpoints in Ed25519 signed notes.
* `audit.verify`: verify a whole stored log against signed checkpoints (`audit.diagnosis` names
  the first problem).
* `audit.receipt`: check one entry's receipt offline.
"""
