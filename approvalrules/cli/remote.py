"""Rule-set versions and the directory of a running server, read through its API with a key.

``approvalrules diff --server URL demo/acme@active rules/acme.yaml`` compares what production
runs with a local file, without database access: :class:`RemoteVersions` answers the same
questions as the store's :class:`~approvalrules.store.versions.VersionLookup` (a version's
text with a resolver for ``extends``, the tenant's directory) from

* ``GET /api/v1/key``: whose key it is (the reference's tenant must be the key's);
* ``GET /api/v1/rulesets/{name}/versions/{number|active}`` and ``GET /api/v1/rulesets/{name}``
  (the draft);
* ``GET /api/v1/directory``: the directory document the behavioural diff evaluates against.

A ``read_only`` key is enough (and the one to give QA).  The key comes from ``--key`` or the
environment variable ``APPROVALRULES_API_KEY``; it travels only in the ``Authorization``
header and never appears in any message or output.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from ..engine import MemoryDirectory, load_directory
from ..errors import ApprovalRulesError

#: where the remote diff finds the key when ``--key`` is not given
KEY_ENV = "APPROVALRULES_API_KEY"
#: seconds to wait for the server's answer
TIMEOUT = 30
#: hosts where a key may travel over plain HTTP without a warning
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class RemoteVersions:
    """Versions and directory of the server at ``base_url``, as tenant of ``key``."""

    def __init__(self, base_url: str, key: str | None, *, opener=None, warn=None):
        if not key:
            raise ApprovalRulesError(
                "missing_api_key",
                f"--server needs an API key: set {KEY_ENV} (or give --key); "
                "a read_only key is enough",
            )
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApprovalRulesError(
                "invalid_server", "--server takes an http(s) URL such as https://rules.example.com"
            )
        if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            (warn or _warn)(
                f"warning: the API key travels unencrypted to {parts.hostname}; use https"
            )
        self.base = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")
        )
        self._key = key
        self._open = opener or urllib.request.urlopen
        self._tenant: str | None = None
        self._directories: dict[str, MemoryDirectory] = {}

    # -- the VersionLookup interface the diff command uses -----------------------------------

    def text_of(
        self, tenant: str, name: str, which: str
    ) -> tuple[str, str, Callable[[str], str | None]]:
        """(text, source label, extends resolver) of ``which`` (a number, ``active``/``latest``
        or ``draft``) of rule set ``name``."""
        self._check_tenant(tenant)
        quoted = urllib.parse.quote(name, safe="")
        if which == "draft":
            draft = self._get(f"/api/v1/rulesets/{quoted}")["draft"]
            if draft is None:
                raise ApprovalRulesError(
                    "unknown_draft", f"rule set {name!r} has no draft on {self.base}"
                )
            text = draft
        else:
            number = "active" if which in ("active", "latest") else which
            text = self._get(f"/api/v1/rulesets/{quoted}/versions/{number}")["text"]
        return text, f"{self.base} {tenant}/{name}@{which}", self._resolver()

    def directory(self, tenant: str) -> MemoryDirectory:
        """The tenant's directory on the server (read once per command)."""
        self._check_tenant(tenant)
        if tenant not in self._directories:
            data = self._get("/api/v1/directory")
            self._directories[tenant] = load_directory(
                json.dumps(data), f"{self.base}/api/v1/directory"
            )
        return self._directories[tenant]

    def recorded_orders(self, tenant: str, name: str):
        raise ApprovalRulesError(
            "replay_needs_the_store",
            "--replay-recorded reads the orders in the database and needs --ini; with "
            "--server, export the orders to a JSONL file and give --replay FILE",
        )

    def close(self) -> None:
        """Nothing to close: every request had its own connection."""

    # -- HTTP --------------------------------------------------------------------------------

    def _resolver(self) -> Callable[[str], str | None]:
        def resolve(parent: str) -> str | None:
            try:
                quoted = urllib.parse.quote(parent, safe="")
                return self._get(f"/api/v1/rulesets/{quoted}/versions/active")["text"]
            except RemoteError as exc:
                if exc.status == 404:
                    return None
                raise

        return resolve

    def _check_tenant(self, tenant: str) -> None:
        if self._tenant is None:
            self._tenant = self._get("/api/v1/key")["tenant"]
        if tenant != self._tenant:
            raise ApprovalRulesError(
                "wrong_tenant",
                f"the reference names tenant {tenant!r}, but the API key belongs to tenant "
                f"{self._tenant!r} on {self.base}; write {self._tenant}/<ruleset>@<version> "
                "or use that tenant's key",
            )

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.base + path,
            headers={"Authorization": f"Bearer {self._key}", "Accept": "application/json"},
        )
        try:
            with self._open(request, timeout=TIMEOUT) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise RemoteError.of(exc, self.base + path) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApprovalRulesError(
                "server_unreachable", f"{self.base} does not answer: {reason}"
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise ApprovalRulesError(
                "not_the_api", f"{self.base}{path} did not answer JSON: is it approvalrules?"
            ) from None


class RemoteError(ApprovalRulesError):
    """The server refused a request; ``status`` is its HTTP status, the message its own."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(code, message)
        self.status = status

    @classmethod
    def of(cls, exc: urllib.error.HTTPError, url: str) -> RemoteError:
        try:
            error = json.loads(exc.read().decode("utf-8"))["error"]
            code, text = error["code"], error["message"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            code, text = "server_error", exc.reason
        return cls(code, f"{url} answered {exc.code}: {text}", exc.code)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)
