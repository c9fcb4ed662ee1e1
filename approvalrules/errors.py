"""One exception hierarchy for the whole product.

Every error carries a machine ``code``, a human ``message`` and optional
``details``; where it comes from a document it also carries the ``path`` inside
the document and the ``line`` in the source text.  The web layer maps classes to
HTTP statuses in one table (``approvalrules.views.errors``); the CLI maps them to
exit codes.  Nothing else needs to know which is which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a document: where it is and what is wrong."""

    code: str
    message: str
    path: str = ""
    line: int | None = None
    source: str | None = None
    severity: str = "error"

    def format(self) -> str:
        """``file:line: path: message`` -- the form editors and CI logs understand."""
        where = self.source or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        path = self.path or "(root)"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {path}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        data = {
            "code": self.code,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "severity": self.severity,
        }
        if self.source:
            data["source"] = self.source
        return data


class ApprovalRulesError(Exception):
    """Base of every error this product raises on purpose."""

    code = "error"

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        *,
        path: str = "",
        line: int | None = None,
        details: Any = None,
    ):
        self.code = code or type(self).code
        self.message = message or self.code
        self.path = path
        self.line = line
        self.details = details
        super().__init__(self.message)

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.path:
            where.append(self.path)
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": str(self)}
        details = self.details
        if details is None and (self.path or self.line is not None):
            details = {"path": self.path, "line": self.line}
        if details is not None:
            body["details"] = details
        return body


class DocumentError(ApprovalRulesError):
    """A rule set or directory document is unreadable or invalid.

    ``problems`` lists every finding (Cerbos-style: all at once, not the first).
    """

    code = "invalid_document"

    def __init__(self, problems: list[Problem], message: str | None = None):
        self.problems = [p for p in problems if p.severity == "error"]
        #: the warnings found beside the errors (``approvalrules validate`` shows both)
        self.warnings = [p for p in problems if p.severity != "error"]
        first = (
            self.problems[0] if self.problems else Problem("invalid_document", "invalid document")
        )
        super().__init__(
            first.code,
            message or first.message,
            path=first.path,
            line=first.line,
            details={"problems": [p.as_dict() for p in problems]},
        )

    def format(self) -> str:
        return "\n".join(p.format() for p in self.problems)


class DocumentTooLarge(DocumentError):
    """The document exceeds a size limit (HTTP 413)."""

    code = "document_too_large"


class DirectoryError(ApprovalRulesError):
    """A directory fact is inconsistent or a directory rule is broken."""

    code = "directory_error"


class DirectoryValueError(DirectoryError):
    """A directory write names a value that cannot work: an undefined role, an unknown rule set,
    an invalid e-mail (HTTP 422; ``path`` names the field)."""

    code = "invalid_directory_value"


class OrderError(ApprovalRulesError):
    """The order sent for evaluation is malformed (wrong types, unknown buyer...)."""

    code = "invalid_order"


class NotFound(ApprovalRulesError):
    code = "not_found"


class Conflict(ApprovalRulesError):
    """The request conflicts with the current state (already decided, stale version...)."""

    code = "conflict"


class PreconditionFailed(ApprovalRulesError):
    """A write sent ``If-Match`` with a tag the resource no longer has (HTTP 412): someone
    changed it since the caller read it; ``details.etag`` is the current tag (None: gone)."""

    code = "precondition_failed"


class Forbidden(ApprovalRulesError):
    code = "forbidden"


class InsufficientScope(Forbidden):
    """The API key is valid but its scope does not allow this endpoint (HTTP 403,
    ``insufficient_scope``); ``details`` name the key's scope and the scopes that would do."""

    code = "insufficient_scope"


class Unauthorized(ApprovalRulesError):
    code = "unauthorized"


class DatabaseUnavailable(ApprovalRulesError):
    """The database did not serve the request in time: unreachable, silent, or a deadline hit
    (lock, statement, pool).  Transient: HTTP 503 with ``Retry-After``; ``details.reason`` says
    which (``lock_timeout``, ``statement_timeout``, ``no_answer``, ``pool_exhausted``,
    ``unreachable``)."""

    code = "database_unavailable"
    #: seconds a client should wait before trying again
    retry_after = 5


class TestsFailed(ApprovalRulesError):
    """A rule set's own tests (``tests:``) fail, so it is not published.

    ``results`` holds every test's result (objects with ``name``, ``line``,
    ``failures`` and ``passed``); ``details.tests`` lists the failing ones as
    ``{name, line, failures}``.
    """

    code = "tests_failed"
    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, results: list, name: str = ""):
        self.results = list(results)
        failing = [r for r in self.results if not r.passed]
        of = f"rule set {name!r}" if name else "the rule set"
        super().__init__(
            message=(
                f"{len(failing)} of {len(self.results)} tests of {of} fail; nothing was published"
            ),
            details={
                "tests": [
                    {"name": r.name, "line": r.line, "failures": list(r.failures)} for r in failing
                ]
            },
        )
