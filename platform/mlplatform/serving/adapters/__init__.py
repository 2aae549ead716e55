"""Model-server adapters: the KServe and BentoML adaptation code the thin entry points under serving/ call."""
