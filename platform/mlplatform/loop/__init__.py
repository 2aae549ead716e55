"""The closed loop on the embedded stack: drift -> alert -> retrain -> gated promotion -> the server swaps.

``driver`` runs the steps (``run_loop``) and sets up a world to run them in (``prepare``); ``waits`` waits for the
components that act by themselves; ``timeline`` records each step and the outcome; ``traffic`` makes requests for
any model from its spec and feature store.  The model's data is the one thing the loop does not know how to make:
the caller injects it (``driver.RegenerateData``): ``mlplatform loop run`` passes a bundled model's generator, or
``drifted.DriftedTable`` over the user's ``--drifted`` table.  Nothing here imports ``mlplatform.demo``.
"""
