"""Signed webhooks: subscriptions (``dantaro webhooks``), the URL policy, signing and the worker's delivery job.

Events are derived by ``app.events`` and written to the outbox (``app.storage.outbox``) by ``publish``; this package
sends them.
"""
