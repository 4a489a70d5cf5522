"""A site's data directory: create it, unlock it, and work in a session.

    data_dir/
        wardcrf.db        SQLCipher 4 database (events, projections, keys, photos)
        keyslots.json     the database key wrapped per user + recovery slot

`init` creates both; `Site.open` reads the slots; `unlock` derives a user's
key-encryption key, unwraps the database key and returns a `Session` that
knows who is working and which role they hold. Every service takes a session.

The site never installs the features (`wardcrf.features` sits above it: the
features open sites themselves, for the demo, the hub and a restore). Whoever
starts the program does, once, before any site's database is created or
opened: the command line (`wardcrf.cli`), the ward app's sign-in
(`screens/ward.py: sign_in`), a test run (`tests/conftest.py`), a script.
`init`, `unlock` and `unlock_key` refuse to touch a database until then
(`registration.require_installed`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import eventlog, kits, projections, registration, roles, rollback, sessionkeys
from .clock import iso_utc, now_utc, zone
from .errors import AuthError, PermissionDenied, Refused, UsageError
from .eventlog import AppendResult, Author, DeviceContext
from .keyslots import (
    LOCKOUT_AFTER,
    KeySlots,
    Opened,
    check_password_rules,
    format_recovery_key,
    new_database_key,
)
from .names import check_name as _check_name
from .store import Store, db_path

DEFAULT_ZONE = "Asia/Shanghai"


def default_data_dir() -> Path:
    env = os.environ.get("WARDCRF_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("wardcrf", appauthor=False))


@dataclass
class InitResult:
    site: Site
    recovery_key: str
    device: str


@dataclass(eq=False)
class Session:
    """A signed-in user on an unlocked store. Passed to every service.

    It carries no key: what the sign-in unlocked is held beside it
    (`sessionkeys`) and used only by the services that need it.
    """

    site: Site
    store: Store
    ctx: DeviceContext
    user: str
    role: str
    full_name: str
    warnings: list[str] = field(default_factory=list)
    protocol: dict[str, str] | None = None

    @property
    def author(self) -> Author:
        return Author(user=self.user, role=self.role, protocol=self.protocol)

    def require(self, action: str, *, what: str | None = None) -> None:
        roles.require(self.role, action, what=what)

    def append(self, **kwargs: Any) -> AppendResult:
        """Append an event as this session's user (see `eventlog.append`)."""
        result = eventlog.append(self.store, self.ctx, self.author, **kwargs)
        self.warnings.extend(result.warnings)
        return result

    def close(self) -> None:
        sessionkeys.forget(self)
        self.store.close()


class Site:
    """A data directory, before or after unlocking."""

    def __init__(self, data_dir: Path, slots: KeySlots) -> None:
        self.data_dir = data_dir
        self.slots = slots

    @property
    def db_path(self) -> Path:
        return db_path(self.data_dir)

    # -- creating ------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        data_dir: Path,
        *,
        site: str,
        device_name: str,
        admin: str,
        password: str,
        admin_full_name: str | None = None,
        zone_name: str = DEFAULT_ZONE,
        kind: str = "ward",
        protocol_file: Any = None,
    ) -> InitResult:
        """Create a site. `protocol_file`: a read file of either format (`engine.loading.read_file`) to start
        with instead of the shipped default; a format-2 one must re-encode a format-1 file shipped with
        wardcrf (checked before anything is created). Refuses before the features are installed."""
        registration.require_installed()
        from .engine import loading

        first = loading.first_protocol(protocol_file)
        site = _check_name("site", site)
        device_name = _check_name("device", device_name)
        admin = _check_name("user name", admin)
        check_password_rules(password)
        try:
            zone(zone_name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        data_dir = Path(data_dir)
        if (data_dir / "keyslots.json").exists() or db_path(data_dir).exists():
            raise UsageError(f"{data_dir} already holds a wardcrf site; refusing to overwrite it")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
        device = eventlog.new_device_id()
        key = new_database_key()
        from . import devicekeys

        signing_key = devicekeys.new_signing_key()
        recovery_raw = os.urandom(32)
        slots = KeySlots.create(data_dir, site=site, device=device)
        slots.set_user_slot(admin, password, key, signing_key)  # an admin may sign (device.sign)
        slots.set_recovery_slot(recovery_raw, key, signing_key)
        store = None
        try:
            store = Store(db_path(data_dir), key)
            store.migrate()
            rollback.attach(store, rollback.Counter.of(data_dir, key, site, device))
            with store.transaction():
                store.execute(
                    "INSERT INTO site (id, site, device, device_name, kind, zone, created_at)"
                    " VALUES (1, ?, ?, ?, ?, ?, ?)",
                    (site, device, device_name, kind, zone_name, iso_utc(now_utc())),
                )
                from . import users

                devicekeys.create(store, device, signing_key)
                ctx = DeviceContext.load(store)
                author = Author(user=admin, role="admin")
                eventlog.append(
                    store,
                    ctx,
                    author,
                    type="site.initialized",
                    subject=f"site:{site}",
                    body={
                        "site": site,
                        "device": device,
                        "device_name": device_name,
                        "kind": kind,
                        "zone": zone_name,
                    },
                )
                users.record_user_added(store, ctx, author, admin, admin_full_name or admin, "admin")
                # Every site starts with a protocol loaded and active (the shipped default
                # unless `--protocol` names one); `wardcrf protocol load` adds versions later.
                from . import protocol

                protocol.record_loaded(store, ctx, author, first.of)
                if first.model is not None:
                    loading.record_reencoded(store, ctx, author, loading.Reencoding(first.model, first.of))
            slots.save()
        except BaseException:
            if store is not None:
                store.close()
            for leftover in (db_path(data_dir), data_dir / "wardcrf.db-wal", data_dir / "wardcrf.db-shm"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            raise
        store.close()
        return InitResult(cls(data_dir, slots), format_recovery_key(recovery_raw), device)

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: Path) -> Site:
        data_dir = Path(data_dir)
        if data_dir.exists() and not data_dir.is_dir():
            raise UsageError(
                f"{data_dir} is a file, not a data directory; pass the folder that holds wardcrf.db"
                " (--data-dir or WARDCRF_DATA_DIR)"
            )
        if not data_dir.is_dir():
            raise UsageError(
                f"data directory {data_dir} does not exist (run `wardcrf init` or pass --data-dir)"
            )
        slots = KeySlots.load(data_dir)
        if not db_path(data_dir).exists():
            raise UsageError(f"{data_dir} has key slots but no database {db_path(data_dir).name}")
        return cls(data_dir, slots)

    def unlock(
        self,
        username: str,
        password: str,
        *,
        accept_rollback: str | None = None,
        accept_move: str | None = None,
    ) -> Session:
        """Authenticate and open the store. Failed attempts count toward lockout.

        A wrong password and an unknown name get the same answer (a stranger at
        a shared ward laptop learns no user names). Only the *right* password
        of a deactivated user, which proves who is typing, is told that the
        account is deactivated; that attempt is logged, not counted as a failure.

        A database older than this laptop's record of it is refused
        (`rollback.RollbackDetected`) unless an admin signs in with
        `accept_rollback` set to the reason for keeping it; one last used on
        another computer (`machine.MachineChanged`) unless an admin signs in
        with `accept_move` set to the reason.

        Refuses before the features are installed, before the password is
        checked or a failure counted (`unlock_key` checks again).
        """
        registration.require_installed()
        username = username.strip()
        with self.slots.locked():
            if self.slots.failed_count(username) >= LOCKOUT_AFTER:
                raise AuthError(
                    f"account {username} is locked after {LOCKOUT_AFTER} failed logins;"
                    " an admin must unlock it"
                )
            check = self.slots.check_password(username, password)
            opened = check.opened
            count = 0
            if check.retired:
                self.slots.record_refused(username, iso_utc(now_utc()), "deactivated")
            elif opened is None:
                count = self.slots.record_failure(username, iso_utc(now_utc()))
        # Raised after the `locked()` block so the failure count is saved
        # (the block only writes the file when it ends without an exception).
        if check.retired:
            raise AuthError(deactivated_message(username))
        if opened is None:
            left = LOCKOUT_AFTER - count
            if left <= 0:
                raise AuthError(f"wrong user name or password; account {username} is now locked")
            raise AuthError(f"wrong user name or password ({left} attempt(s) left before lockout)")
        session = self._session(
            opened.key, username, opened=opened, accept_rollback=accept_rollback, accept_move=accept_move
        )
        with self.slots.locked():
            self.slots.clear_failures(username)
        return session

    def unlock_key(self, key: bytes) -> Store:
        """Open the store with an already-unwrapped key (recovery, restore, and every sign-in).

        Refuses (a RuntimeError, before the database is opened) while the features are not installed:
        a store opened without them would project events with half their projectors.
        """
        registration.require_installed()
        store = Store(self.db_path, key)
        try:
            applied = store.migrate()
            rollback.attach(store, self._counter(key))
            if kits.MIGRATION in applied:
                kits.fill(store)  # the administration records an upgraded site already holds
            projections.rederive_after(store, applied)  # an index a migration widened (the ward queue)
        except BaseException:
            store.close()
            raise
        return store

    def _counter(self, key: bytes) -> rollback.Counter:
        return rollback.Counter.of(self.data_dir, key, self.slots.site, self.slots.device)

    def reopen(self, session: Session) -> Session:
        """A second connection for the same signed-in user, without asking the password again.

        For work that runs beside the screens (the TUI's background sync):
        its own connection keeps long network waits from holding the one the
        screens use. Same user, same role, same permission checks.
        """
        key = sessionkeys.database_key(session)
        again = self._session(key, session.user, signing=sessionkeys.signing_key(session))
        identity = sessionkeys.unblinding_identity(session)
        if identity is not None:
            sessionkeys.set_unblinding_identity(again, identity)
        return again

    def _session(
        self,
        key: bytes,
        username: str,
        *,
        opened: Opened | None = None,
        signing: bytes | None = None,
        accept_rollback: str | None = None,
        accept_move: str | None = None,
    ) -> Session:
        """Open the store for `username`; `opened` is what their slot gave (a sign-in), or None (reopen)."""
        from . import devicekeys, unblindkeys, users

        store = self.unlock_key(key)
        try:
            ctx = DeviceContext.load(store)
            user = users.get(store, username)
            if user is None:
                raise AuthError("wrong user name or password")
            if not user["active"]:
                # Deactivated while this laptop was offline (a hub user change): the
                # slot still opened. Retire it now so the password opens nothing more.
                with self.slots.locked():
                    self.slots.retire_user_slot(username, key)
                    self.slots.record_refused(username, iso_utc(now_utc()), "deactivated")
                raise AuthError(deactivated_message(username))
            if user["locked"]:
                raise AuthError(
                    f"account {username} is locked after {LOCKOUT_AFTER} failed logins;"
                    " an admin must unlock it"
                )
            session = Session(self, store, ctx, username, user["role"], user["full_name"])
            # The signing key only for a role that may sign (a slot of another role never carries it).
            sessionkeys.hold(
                session, key, signing if roles.allowed(user["role"], devicekeys.SIGN_ACTION) else None
            )
            from .protocol_ref import active_protocol_ref

            session.protocol = active_protocol_ref(store)
            # Before anything is written: a rolled-back database is refused untouched.
            self._check_rollback(session, key, accept_rollback)
            self._check_behind(session, accept_rollback)
            self._check_machine(session, accept_move)
            self._flush_failures(session)
            devicekeys.settle_signing_key(session, opened)
            unblindkeys.settle(session, opened)
            return session
        except BaseException:
            store.close()
            raise

    def _check_rollback(self, session: Session, key: bytes, accept: str | None) -> None:
        """Compare the database's write counter with the file beside the key slots (`rollback`)."""
        counter = self._counter(key)
        st = rollback.status(session.store, counter)
        if accept is not None and not st.rolled_back:
            from . import behind

            if behind.state(session.store) is None:
                raise Refused(
                    "there is no rollback to accept: this database is the newest this laptop has seen"
                )
            return  # behind its own chain elsewhere: accepted by `_check_behind`
        if accept is not None:
            session.require("db.accept_rollback", what="accept an older database")
            if not accept.strip():
                raise UsageError("accepting an older database needs a reason (--reason)")
            session.append(
                type="db.rollback_accepted",
                subject=f"site:{session.ctx.site}",
                body={"recorded": st.recorded, "database": st.database},
                reason=accept.strip(),
            )
            counter.write(rollback.database_value(session.store), lower=True)
        elif st.rolled_back:
            assert st.recorded is not None
            raise rollback.RollbackDetected(st.recorded, st.database, self.db_path)
        elif st.recorded is None and st.database > 0:
            # Deleted, or not this database's (no slot verifies): made again, and said so.
            session.append(
                type="db.rollback_counter_reset",
                subject=f"site:{session.ctx.site}",
                body={"database": st.database},
            )
            session.warnings.append(
                f"the rollback counter beside the key slots ({rollback.FILENAME}) was missing or not this"
                " database's; it is made again now, and a rollback before now cannot be detected"
            )
        elif st.recorded is None or st.recorded < st.database:
            counter.write(st.database)  # first use, or catching up after a crash between commit and file

    def _check_behind(self, session: Session, accept: str | None) -> None:
        """This database is not behind this device's events held elsewhere, or an admin says why (`behind`)."""
        from . import behind

        b = behind.state(session.store)
        if b is None:
            return
        if accept is None:
            raise behind.BehindDetected(b)
        session.require("db.accept_rollback", what="keep a database behind this laptop's events elsewhere")
        if not accept.strip():
            raise UsageError("keeping an older database needs a reason (--reason)")
        with session.store.transaction():
            behind.clear(session.store)
            if b.restored is not None:  # the restore that stopped, recorded first
                session.append(type="db.restored", subject=f"site:{session.ctx.site}", body=b.restored)
            session.append(
                type="db.behind_accepted",
                subject=f"site:{session.ctx.site}",
                body=b.body(),
                reason=accept.strip(),
            )

    def _check_machine(self, session: Session, accept: str | None) -> None:
        """The computer this database was last used on is this one, or an admin says why (`machine`)."""
        from . import machine

        here = machine.fingerprint(session.ctx.site, session.ctx.device)
        before = machine.stored(session.store)
        if accept is not None:
            if before is None or before == here:
                raise Refused("there is no move to accept: this database was last used on this computer")
            session.require("device.accept_move", what="accept a database moved from another computer")
            if not accept.strip():
                raise UsageError("accepting a moved database needs a reason (--reason)")
            session.append(
                type="device.moved",
                subject=f"site:{session.ctx.site}",
                body={"computer": here},
                reason=accept.strip(),
            )
            machine.remember(session.store, here)
        elif before is None:
            machine.remember(session.store, here)  # first sign-in here (or a site made before this check)
        elif before != here:
            raise machine.MachineChanged()

    def _flush_failures(self, session: Session) -> None:
        """Write failed and refused attempts counted while the database was closed into the log.

        Also retires the slots of users deactivated meanwhile (by a hub user
        change applied on this laptop): the first session with the key does it.
        """
        from . import users

        with self.slots.locked():
            pending = self.slots.take_pending_failures()
            refused = self.slots.take_pending_refusals()
            stale = [
                name
                for name in self.slots.usernames()
                if (row := users.get(session.store, name)) is not None and not row["active"]
            ]
            for name in stale:
                self.slots.retire_user_slot(name, sessionkeys.database_key(session))
            if not pending and not refused:
                return
            with session.store.transaction():
                for username, times in pending.items():
                    for at in times:
                        users.record_login_failed(session, username, at)
                for attempt in refused:
                    users.record_login_refused(session, attempt["username"], attempt["at"], attempt["why"])

    def record_failed_login(self, session: Session, username: str) -> None:
        """A failed login while the store is already open (TUI switch-user, signing)."""
        from . import users

        with self.slots.locked():
            count = self.slots.record_failure(username, iso_utc(now_utc()))
            self.slots.take_pending_failures()
        users.record_login_failed(session, username, iso_utc(now_utc()), count=count)

    def verify_password(self, session: Session, username: str, password: str) -> None:
        """Re-authenticate a user (e-signature, unlock) against an open store."""
        from . import users

        user = users.get(session.store, username)
        if user is None or not user["active"]:
            raise AuthError(f"{username} is not an active user of this site")
        if user["locked"] or self.slots.failed_count(username) >= LOCKOUT_AFTER:
            raise AuthError(f"account {username} is locked; an admin must unlock it")
        if self.slots.unwrap_with_password(username, password) is None:
            self.record_failed_login(session, username)
            raise AuthError(f"wrong password for {username}")
        with self.slots.locked():
            self.slots.clear_failures(username)


def deactivated_message(username: str) -> str:
    """Said only to someone who typed the account's right password (see `Site.unlock`)."""
    return f"account {username} is deactivated; ask an admin (your password is right, but this account may no longer sign in)"


def require_active_admin(session: Session) -> None:
    if session.role != "admin":
        raise PermissionDenied(f"role {session.role} may not manage users (allowed: admin)")
