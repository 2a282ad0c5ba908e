"""Domain errors of the readiness API, rendered by one handler."""

from __future__ import annotations


class ReadinessError(Exception):
    """Base class; `status` is the HTTP status it is rendered with."""

    status = 400


class UnknownUseCase(ReadinessError):
    """No such use case is configured."""

    status = 404


class UnknownCandidate(ReadinessError):
    """The use case has no candidate of that name."""

    status = 404


class InvalidCriteria(ReadinessError):
    """A criteria document was rejected; the message names the line and the reason."""

    status = 422


class NoCriteria(ReadinessError):
    """The use case has no criteria defined yet."""

    status = 404
