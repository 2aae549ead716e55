"""Serving errors: each one is an HTTP status and an outcome label both model servers answer with."""

from __future__ import annotations


class ServingError(Exception):
    """A request that cannot be answered; ``status`` is the HTTP status both servers return."""

    status = 500
    outcome = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(ServingError):
    """The request body is malformed; the message names the field (``entities[2].amount``)."""

    status = 422
    outcome = "invalid"


class BatchTooLargeError(ServingError):
    """More entities than ``settings.serving.max_batch_size``."""

    status = 413
    outcome = "too_large"


class BodyTooLargeError(ServingError):
    """A request body longer than ``settings.serving.max_body_kb``: refused before it is read whole."""

    status = 413
    outcome = "too_large"


class ModelUnavailableError(ServingError):
    """No model is loaded (yet); the message says why (registry down, no alias, load failure)."""

    status = 503
    outcome = "unavailable"


class FeatureStoreUnavailableError(ServingError):
    """The online store could not be read; retrying later may work."""

    status = 503
    outcome = "unavailable"


class ScoringTimeoutError(ServingError):
    """Scoring outlived ``serving.scoring_timeout_s`` (nearly always a stuck online-store read)."""

    status = 503
    outcome = "unavailable"
