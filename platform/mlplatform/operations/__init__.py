"""What the platform does when asked, below both the REST API (``mlplatform.api``) and the web UI (``mlplatform.ui``).

The routers and the UI's forms call the same functions, so a promotion from a browser form and one from ``curl``
pass the same gate, write the same audit events and refuse in the same words.  Each operation takes the request
(for the client address in the audit log) and the already authorised ``Principal``; refusals are raised as
``Problem`` (the REST API answers them as problem documents, the UI shows them as messages).

- ``services``: ``ApiServices``, what a request acts on (store, registry, orchestrator, deployer), built once per app
- ``access``: who is calling and may they (``authenticate``, ``require``, ``permit``) and the audit ``record``
- ``security``: session cookies, CSRF tokens, the login rate limit; ``metrics``: the web app's Prometheus metrics
- ``schemas``: the validated request and response bodies; ``problems``: the ``Problem`` every operation raises
- ``sessions``, ``promotion``, ``training``, ``deployments``, ``drift``: the operations, one module per subject
"""
