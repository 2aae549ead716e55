"""The closed loop on the embedded stack: drift -> alert -> retrain -> gated promotion -> the server swaps.

``driver`` runs the steps (``run_loop``) and sets up a world to run them in (``prepare``); ``waits`` waits for the
components that act by themselves; ``timeline`` records each step and the outcome.  The model's data is the one
thing the loop does not know how to make: the caller injects it (``driver.RegenerateData``), and ``mlplatform loop
run`` passes the fraud demo's generator.  Nothing here imports ``mlplatform.demo``.
"""
