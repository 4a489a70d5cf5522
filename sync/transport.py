"""HTTP client for a hub: timeouts everywhere, bounded retries with backoff.

A ward on a flaky link must never hang: every request has connect and read
timeouts, and a failed request is retried a bounded number of times with
exponential backoff before `Offline` is raised with one clear line. Pushes
are resumable at bundle granularity: the hub says which bundle it last
applied for the device and only later bundles are sent.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from wardcrf.errors import Refused, WardError

SIG_HEADER = "X-Wardcrf-Minisig"


class Offline(WardError):
    """The hub did not answer; nothing was lost, pending bundles stay in the outbox."""


class Client:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise Refused(f"hub URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        last: Exception | None = None
        timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout)
        for attempt in range(self.attempts):
            try:
                with httpx.Client(timeout=timeout) as http:
                    resp = http.request(method, self.url + path, **kw)
                if resp.status_code >= 500:
                    raise httpx.HTTPStatusError(
                        f"hub error {resp.status_code}", request=resp.request, response=resp
                    )
                return resp
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                last = exc
                if attempt + 1 < self.attempts:
                    time.sleep(self.backoff * (2**attempt))
        raise Offline(
            f"hub at {self.url} is unreachable ({type(last).__name__}: {last}); nothing was lost, "
            "pending bundles stay in the outbox and go with the next push"
        )

    def _json(self, resp: Any) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError:
            raise Refused(f"hub answered {resp.status_code} with something that is not JSON") from None
        if resp.status_code >= 400 and resp.status_code != 409:
            raise Refused(f"hub refused: {data.get('error') or data.get('message') or resp.status_code}")
        return dict(data)

    def ping(self) -> dict[str, Any]:
        return self._json(self._request("GET", "/v1/ping"))

    def state(self, device: str) -> dict[str, Any]:
        return self._json(self._request("GET", f"/v1/devices/{device}/state"))

    def push(self, name: str, cipher: bytes, sig: bytes) -> dict[str, Any]:
        headers = {
            SIG_HEADER: base64.b64encode(sig).decode("ascii"),
            "Content-Type": "application/octet-stream",
        }
        return self._json(self._request("POST", f"/v1/bundles/{name}", content=cipher, headers=headers))

    def receipt(self, device: str) -> tuple[bytes, bytes]:
        d = self._json(self._request("GET", f"/v1/devices/{device}/receipt"))
        return base64.b64decode(d["data"]), base64.b64decode(d["sig"])

    def outbox(self, device: str, after: int) -> list[dict[str, Any]]:
        return list(
            self._json(self._request("GET", f"/v1/devices/{device}/outbox", params={"after": after}))[
                "bundles"
            ]
        )

    def fetch(self, device: str, bundle_seq: int) -> tuple[bytes, bytes]:
        resp = self._request("GET", f"/v1/devices/{device}/outbox/{bundle_seq}")
        if resp.status_code != 200:
            self._json(resp)
            raise Refused(f"hub did not return bundle {bundle_seq}")
        return resp.content, base64.b64decode(resp.headers[SIG_HEADER])

    def restore_list(self, device: str) -> list[dict[str, Any]]:
        return list(self._json(self._request("GET", f"/v1/devices/{device}/restore"))["bundles"])

    def restore_fetch_into(
        self, device: str, source: str, bundle_seq: int, files_dir: Path
    ) -> tuple[Path, bytes]:
        """A device's bundle for a replacement laptop, streamed into the laptop's spool; (its file, the hub's signature).

        The body goes to `files_dir`/.incoming in pieces as it arrives
        (`engine.Receiver`, refused past the bundle size limit), never held
        whole; the caller verifies and applies that file and it is removed
        unless kept. Retried like every request; a partial file is removed
        before each retry.
        """
        import httpx

        from .bundle import LIMITS
        from .engine import Receiver

        path = f"/v1/devices/{device}/restore/{source}/{bundle_seq}"
        last: Exception | None = None
        timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout)
        for attempt in range(self.attempts):
            received = Receiver(files_dir, LIMITS.bundle_bytes)
            try:
                with httpx.Client(timeout=timeout) as http, http.stream("GET", self.url + path) as resp:
                    if resp.status_code >= 500:
                        raise httpx.HTTPStatusError(
                            f"hub error {resp.status_code}", request=resp.request, response=resp
                        )
                    if resp.status_code != 200:
                        resp.read()
                        self._json(resp)
                        raise Refused(f"hub did not return bundle {bundle_seq} of {source}")
                    sig = base64.b64decode(resp.headers.get(SIG_HEADER, ""))
                    for piece in resp.iter_bytes(256 * 1024):  # pieces as they arrive, a few at most held
                        received.write(piece)
                return received.finish(), sig
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                received.discard()
                last = exc
                if attempt + 1 < self.attempts:
                    time.sleep(self.backoff * (2**attempt))
            except BaseException:
                received.discard()
                raise
        raise Offline(
            f"hub at {self.url} is unreachable ({type(last).__name__}: {last}); nothing was lost, "
            "the restore can be run again"
        )
