"""Model serving: the ``Predictor`` both model servers (KServe, BentoML) wrap, its metrics and the server adapters.

Kept import-light: the servers import ``mlplatform.serving.predictor`` explicitly, which loads MLflow and Feast
only when a model is loaded.
"""
