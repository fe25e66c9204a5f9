"""Privacy officers: their accounts (`accounts`), their review sessions (`sessions`) and the
`broker users` commands (`cli`). The login pages are part of the review interface (broker/review/).
"""
