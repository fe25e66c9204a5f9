"""The append-only, tamper-evident audit log (filled in by the audit issue)."""
