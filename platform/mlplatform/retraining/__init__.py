"""Retraining: acting on what monitoring observed.

``alertmanager`` is the boundary (the webhook's payload and its token); ``policy`` decides which drift alerts start
a training run (idempotency key, cooldown, one retrain in flight) and retries starting it; ``worker`` runs those
retries in the API process.  This package may import ``mlplatform.monitoring``; monitoring never imports it, so
observing works without any retraining wired in.
"""
