"""`wardcrf hub serve`: the hub over HTTP (Starlette on uvicorn).

Plain HTTP on the address given (127.0.0.1 by default); TLS termination is
left to a reverse proxy in front (docs/sync.md). Bundles are signed and
encrypted end to end, so the transport adds confidentiality of metadata
only. One hub session serves every request; the hub lock serialises
access to the hub's file, so concurrent pushes are applied one at a time,
each exactly once. A hub on PostgreSQL is reached through one bounded pool
of connections per worker (`pghub.pooled`, `--pool-size`), opened before
the server listens and closed when it stops; reads of the ledger alone
(device state, receipts) use it outside the hub lock.

A push body must keep arriving: no pause longer than the idle timeout, and
on average at least the minimum rate once the first idle-timeout seconds
have passed (`BodyTimeouts`); else it is cut (408) and nothing is kept.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from wardcrf.errors import Refused, StoreError, UsageError, WardError

from . import engine, hub, outbox, pghub, receipts, registry
from .bundle import LIMITS
from .pgstore import DEFAULT_POOL_SIZE
from .transport import SIG_HEADER

if TYPE_CHECKING:
    from wardcrf.site import Session

MAX_BODY = LIMITS.bundle_bytes
"""Largest bundle `hub serve` reads (`--max-body-mb`, default 512 MiB: five default-size bundles)."""


@dataclass(frozen=True)
class BodyTimeouts:
    """How slowly a push body may arrive before `hub serve` cuts it (408, nothing kept).

    `idle`: the longest pause, in seconds, between two pieces of the body
    (and before the first). `min_rate`: bytes per second the body must
    average, counted from its start with the first `idle` seconds free: after
    t seconds at least (t - idle) x min_rate bytes must have arrived. 0
    turns the rate rule off. A client that stops sending is cut by the
    first, one that trickles a byte at a time by the second; a 100 MB bundle
    over a link of 2 KiB/s (weak GPRS) takes 14 hours and passes both.
    """

    idle: float = 60.0
    min_rate: int = 1024

    def __post_init__(self) -> None:
        if not 0.001 <= self.idle <= 3600:
            raise UsageError(f"--body-idle-timeout {self.idle:g}: give 0.001 to 3600 seconds")
        if not 0 <= self.min_rate <= 1 << 30:
            raise UsageError(f"--body-min-rate {self.min_rate}: give 0 (off) to 1073741824 bytes per second")

    def wait(self, elapsed: float, received: int) -> tuple[float, str]:
        """How long the next piece may take, and which rule cuts it then ('idle' or 'rate')."""
        if self.min_rate:
            left = self.idle + received / self.min_rate - elapsed
            if left < self.idle:
                return left, "rate"
        return self.idle, "idle"


def app(session: Session, *, max_body: int = MAX_BODY, timeouts: BodyTimeouts | None = None) -> Any:
    """The ASGI app. On a PostgreSQL hub, open the worker's pool around it (`pghub.pooled`, as `serve` does);
    without one each request connects for itself."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    hub.require_hub(session)
    from wardcrf import devicekeys

    signer = devicekeys.signer(session)  # a role that may sign serves; refused here, at start-up, otherwise
    store = session.store
    site, device, _ = registry.own_site(store)
    limits = timeouts or BodyTimeouts()

    def err(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def trouble(exc: WardError, status: int) -> JSONResponse:
        # The hub's own database failing (unreachable, busy, a connection lost mid-request) is not the
        # ward's fault: 503, which the ward's client retries and then reports as "nothing was lost".
        return err(503 if isinstance(exc, StoreError) else status, str(exc))

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"hub": device, "site": site, "format": "wardbundle/1"})

    def _state(dev: str) -> dict[str, Any]:
        with hub.LOCK:
            if registry.device(store, dev) is None:
                raise Refused(f"unknown device {dev}")
        with hub.ledger_reader(session) as ledger:  # the hub's file, or its PostgreSQL database
            seq, sha = engine.last_applied(ledger, dev)
        return {"device": dev, "bundle_seq": seq, "manifest": sha}

    async def state(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await run_in_threadpool(_state, request.path_params["device"]))
        except WardError as exc:
            return trouble(exc, 404)

    def _push(name: str, received: engine.Receiver, sig: bytes) -> tuple[int, dict[str, Any]]:
        res = hub.import_bundle(session, received.finish(), sig, name, received=True)
        body: dict[str, Any] = {"status": res.outcome.status, "message": res.outcome.message}
        if res.receipt:
            rname, data, rsig = res.receipt
            body["receipt"] = {
                "name": rname,
                "data": base64.b64encode(data).decode(),
                "sig": base64.b64encode(rsig).decode(),
            }
        return (200 if res.ok else 409), body

    async def push(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        sig_b64 = request.headers.get(SIG_HEADER)
        if not sig_b64:
            return err(400, f"missing {SIG_HEADER} header (the bundle's .minisig, base64)")
        body = await _receive(request, max_body)
        if isinstance(body, JSONResponse):
            return body
        try:
            sig = base64.b64decode(sig_b64, validate=True)
            status, answer = await run_in_threadpool(_push, name, body, sig)
        except WardError as exc:
            return trouble(exc, 422)
        except ValueError as exc:
            return err(422, str(exc))
        finally:
            # Kept (moved under applied/ or held/) or not: nothing of this push stays in the spool.
            await run_in_threadpool(body.discard)
        return JSONResponse(answer, status_code=status)

    # The body goes to the spool file in pieces of about this size (one write each, off the event loop).
    write_piece = 256 * 1024

    async def _receive(request: Request, limit: int) -> engine.Receiver | JSONResponse:
        """The body, written into the hub's spool while it streams and cut off at `limit` (chunked or not).

        Never held whole: each piece goes to `sync/.incoming/` as it arrives
        (`engine.Receiver`), and the hub verifies and applies that file as
        `hub import` does a file. A Content-Length over the limit is refused
        before a byte is read; a chunked body, or one longer than it said, is
        refused as soon as the running count passes the limit (or its
        Content-Length); a body that ends short of its Content-Length, or
        whose client goes away, is refused. Whatever was written is removed.
        Starlette then answers and the server closes the connection rather
        than reading the rest. A body that pauses longer than the idle
        timeout, or falls under the minimum rate (`BodyTimeouts`), is cut
        the same way (408).
        """
        too_big = (
            f"bundle larger than the hub accepts ({limit // (1024 * 1024)} MiB, hub serve --max-body-mb)"
        )

        def refuse(status: int, message: str) -> JSONResponse:
            # "Connection: close": the server drops the connection after answering
            # instead of reading (and discarding) the rest of the body.
            return JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})

        declared = request.headers.get("content-length")
        expected: int | None = None
        if declared is not None:
            if not declared.isdigit():
                return refuse(400, "Content-Length is not a number")
            expected = int(declared)
            if expected > limit:
                return refuse(413, too_big)
        try:
            received = await run_in_threadpool(engine.Receiver, hub.files_dir(session), limit)
        except OSError as exc:
            return refuse(507, f"the hub cannot store the bundle ({exc.strerror or exc}); nothing kept")
        answer: JSONResponse | None = None
        pending = bytearray()
        size = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunks = request.stream().__aiter__()
        try:
            while True:
                elapsed = loop.time() - start
                wait, rule = limits.wait(elapsed, size)
                try:
                    if wait <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(wait):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    answer = refuse(408, _too_slow(rule, size, loop.time() - start))
                    break
                size += len(chunk)
                if size > limit:
                    answer = refuse(413, too_big)
                    break
                if expected is not None and size > expected:
                    answer = refuse(400, f"the body is longer than its Content-Length ({expected} bytes)")
                    break
                pending += chunk
                if len(pending) >= write_piece:
                    await run_in_threadpool(received.write, pending)
                    pending = bytearray()
            if answer is None:
                if pending:
                    await run_in_threadpool(received.write, pending)
                if expected is not None and size < expected:
                    answer = refuse(
                        400,
                        f"the body ended after {size} of the {expected} bytes its Content-Length declares",
                    )
        except ClientDisconnect:
            answer = refuse(400, f"the client went away after {size} bytes of the bundle; nothing kept")
        except OSError as exc:
            answer = refuse(507, f"the hub cannot store the bundle ({exc.strerror or exc}); nothing kept")
        except BaseException:
            received.discard()  # cancelled (the server stopping): no await left to make
            raise
        if answer is not None:
            await run_in_threadpool(received.discard)
            return answer
        return received

    def _too_slow(rule: str, size: int, elapsed: float) -> str:
        if rule == "idle":
            return (
                f"the bundle stopped arriving: nothing for {limits.idle:g} s after {size} bytes"
                " (hub serve --body-idle-timeout); nothing kept, push it again"
            )
        return (
            f"the bundle arrived too slowly: {size} bytes in {elapsed:.1f} s, under the hub's minimum of"
            f" {limits.min_rate} bytes/s after the first {limits.idle:g} s (hub serve --body-min-rate);"
            " nothing kept, push it again"
        )

    def _receipt(dev: str) -> dict[str, str]:
        with hub.ledger_reader(session) as ledger:
            _, data, sig = receipts.make(ledger, dev, signer)
        return {"data": base64.b64encode(data).decode(), "sig": base64.b64encode(sig).decode()}

    async def receipt(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await run_in_threadpool(_receipt, request.path_params["device"]))
        except WardError as exc:
            return trouble(exc, 404)

    def _outbox(dev: str, after: int) -> list[dict[str, Any]]:
        rows = hub.outbound(session, dev, after=after)
        return [
            {"bundle_seq": r["bundle_seq"], "first_seq": r["first_seq"], "last_seq": r["last_seq"]}
            for r in rows
        ]

    async def list_outbox(request: Request) -> JSONResponse:
        try:
            after = int(request.query_params.get("after", "0"))
            return JSONResponse(
                {"bundles": await run_in_threadpool(_outbox, request.path_params["device"], after)}
            )
        except (WardError, ValueError) as exc:
            return err(404, str(exc))

    def _fetch(dev: str, seq: int) -> tuple[str, bytes, bytes]:
        with hub.LOCK:
            rows = store.rows("SELECT * FROM sync_outbox WHERE peer = ? AND bundle_seq = ?", (dev, seq))
            if not rows:
                raise Refused(f"no hub bundle {seq} for device {dev}")
            return outbox.materialize(store, rows[0], signer)

    async def fetch(request: Request) -> Response:
        try:
            name, cipher, sig = await run_in_threadpool(
                _fetch, request.path_params["device"], int(request.path_params["seq"])
            )
        except (WardError, ValueError) as exc:
            return err(404, str(exc))
        return Response(
            cipher,
            media_type="application/octet-stream",
            headers={
                SIG_HEADER: base64.b64encode(sig).decode(),
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )

    def _restore_list(dev: str) -> list[dict[str, Any]]:
        return [
            {"device": r["device"], "bundle_seq": r["bundle_seq"]} for r in hub.restore_list(session, dev)
        ]

    async def restore_list(request: Request) -> JSONResponse:
        try:
            return JSONResponse(
                {"bundles": await run_in_threadpool(_restore_list, request.path_params["device"])}
            )
        except WardError as exc:
            return err(404, str(exc))

    def _restore(dev: str, source: str, seq: int) -> tuple[BinaryIO, int, bytes]:
        """The re-encrypted bundle in an unnamed temporary file beside the hub's bundles (gone once closed)."""
        import tempfile

        where = hub.files_dir(session)
        where.mkdir(parents=True, exist_ok=True)
        fh = tempfile.TemporaryFile(dir=where)  # noqa: SIM115 (closed by the response, or below)
        try:
            _name, sig = hub.restore_bundle_into(session, dev, source, seq, fh)
            size = fh.tell()
            fh.seek(0)
        except BaseException:
            fh.close()
            raise
        return fh, size, sig

    def _pieces(fh: BinaryIO) -> Iterator[bytes]:
        try:
            while piece := fh.read(1 << 20):
                yield piece
        finally:
            fh.close()

    async def restore_fetch(request: Request) -> Response:
        p = request.path_params
        try:
            fh, size, sig = await run_in_threadpool(_restore, p["device"], p["source"], int(p["seq"]))
        except (WardError, ValueError) as exc:
            return err(404, str(exc))
        # Streamed from the file in pieces: the bundle is never in the server's memory.
        return StreamingResponse(
            _pieces(fh),
            media_type="application/octet-stream",
            headers={SIG_HEADER: base64.b64encode(sig).decode(), "Content-Length": str(size)},
        )

    return Starlette(
        routes=[
            Route("/v1/devices/{device}/restore", restore_list),
            Route("/v1/devices/{device}/restore/{source}/{seq:int}", restore_fetch),
            Route("/v1/ping", ping),
            Route("/v1/devices/{device}/state", state),
            Route("/v1/bundles/{name}", push, methods=["POST"]),
            Route("/v1/devices/{device}/receipt", receipt),
            Route("/v1/devices/{device}/outbox", list_outbox),
            Route("/v1/devices/{device}/outbox/{seq:int}", fetch),
        ],
    )


def serve(
    session: Session,
    host: str,
    port: int,
    *,
    max_body: int = MAX_BODY,
    timeouts: BodyTimeouts | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> None:
    """Serve until stopped (SIGTERM, Ctrl-C). A PostgreSQL hub's pool is opened first (an unreachable
    database, or one that is not this hub's, stops the start in one line) and closed when the server stops."""
    import uvicorn

    application = app(session, max_body=max_body, timeouts=timeouts)
    with pghub.pooled(session, pool_size):
        uvicorn.run(application, host=host, port=port, log_level="warning", timeout_keep_alive=5)
