"""Domain errors. The API turns each into the JSON error shape of ../shared/API.md."""
from __future__ import annotations


class DomainError(Exception):
    status = 400
    #: A refusal whose record is kept (a failed sign-in counted against guessing): the
    #: request's transaction commits before the error is answered.
    keep_changes = False

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class Invalid(DomainError):
    """422: the input breaks a rule; ``errors`` names the field and the problem."""

    status = 422

    @classmethod
    def field(cls, field: str, problem: str) -> "Invalid":
        return cls(problem, {field: [problem]})


class Problems:
    """Collects every problem by field path, so that one refusal names them all."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, problem: str | None) -> None:
        if problem:
            self.errors.setdefault(path, []).append(problem)

    def raise_if_any(self) -> None:
        if self.errors:
            raise Invalid(self.message, self.errors)


class NotFound(DomainError):
    """404: absent, or not yours to see (the two are indistinguishable on purpose)."""

    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    """409: stale version, already done."""

    status = 409


class Unauthenticated(DomainError):
    status = 401


class TooManyAttempts(DomainError):
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
