"""Model serving: the ``Predictor`` both model servers (KServe, BentoML) wrap, its metrics and prediction log.

Kept import-light: the servers import ``mlplatform.serving.predictor`` explicitly, which loads MLflow and Feast
only when a model is loaded.
"""
