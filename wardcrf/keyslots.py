"""Key slots: the database key wrapped once per user, plus a recovery slot.

Like disk-encryption key slots (LUKS), the random 256-bit database key is
never stored in clear. Each active user has a slot holding the key wrapped
with AES-256-GCM under a key derived from their password by scrypt (memory
hard). A recovery slot wraps it under a random recovery key shown once at
`init`. Changing a password rewrites one slot and never re-encrypts data.

The slots live in ``keyslots.json`` beside the database because they are
needed *before* the database can be opened. The file holds no secret in
clear: salts, nonces, KDF parameters and wrapped keys. Each slot's AES-GCM
associated data binds it to its site, device and slot name, so a slot copied
under another user's name does not open.

Failed logins cannot be written to the database (a wrong password cannot
open it), so they are counted here and flushed into the event log as
``auth.login_failed`` events at the next successful unlock.

Deactivating a user *retires* their slot: the wrapped key is deleted (their
password no longer opens anything) and what remains is a password check
(`retire_user_slot`). It lets the login say "your account is deactivated;
ask an admin" to someone who typed that user's *correct* password, and
"wrong user name or password" to everyone else, so a stranger at a shared
ward laptop learns nothing about which names exist. Attempts by a
deactivated user are kept here too and written to the log as
``auth.login_refused`` events at the next unlock (Part 11 §11.300(d)).

A second key travels in the slots: the *signing key*, which seals the
device's minisign secret inside the database (`devicekeys`). Only the slots
of users whose role may sign for the device (``device.sign`` in `roles`:
the roles that export bundles or run a hub) and the recovery slot carry it,
wrapped under the same password-derived key as the database key. A user of
another role (an auditor) opens the database but holds nothing that opens
the signing secret, whatever they run on the laptop. Sites created before
the signing key existed pass through a *transition* (`set_signing_transition`)
until every slot that should carry it does.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import AuthError, UsageError

FORMAT = "wardcrf-keyslots/1"
FILENAME = "keyslots.json"
RECOVERY_SLOT = "recovery"
RETIRED_PREFIX = "retired:"

# scrypt N=2^15, r=8, p=1: 32 MiB and ~0.1 s here; memory-hard so a stolen
# laptop's slots are expensive to brute-force on GPUs.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1

LOCKOUT_AFTER = 5
MIN_PASSWORD_LENGTH = 10

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def new_database_key() -> bytes:
    """256 random bits, used as a raw SQLCipher key."""
    return secrets.token_bytes(32)


def format_recovery_key(raw: bytes) -> str:
    """Crockford base32 in groups of four: easy to read aloud and type back."""
    # 256 key bits + 4 check bits (from SHA-256 of the key) = 52 characters.
    check = hashlib.sha256(raw).digest()[0] & 0xF
    bits = (int.from_bytes(raw, "big") << 4) | check
    nchars = (len(raw) * 8 + 4) // 5
    chars = []
    for i in range(nchars):
        shift = 5 * (nchars - 1 - i)
        chars.append(_CROCKFORD[(bits >> shift) & 31])
    text = "".join(chars)
    return "WRK-" + "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_recovery_key(text: str) -> bytes:
    cleaned = text.strip().upper().replace("-", "").replace(" ", "")
    if cleaned.startswith("WRK"):
        cleaned = cleaned[3:]
    cleaned = cleaned.replace("O", "0").replace("I", "1").replace("L", "1")
    if len(cleaned) != 52 or any(c not in _CROCKFORD for c in cleaned):
        raise AuthError("recovery key is malformed: expected WRK- followed by 52 base32 characters")
    bits = 0
    for c in cleaned:
        bits = (bits << 5) | _CROCKFORD.index(c)
    # 52 chars = 260 bits: the key is the top 256, then 4 check bits.
    raw = (bits >> 4).to_bytes(32, "big")
    if bits & 0xF != hashlib.sha256(raw).digest()[0] & 0xF:
        raise AuthError("recovery key is mistyped: its check characters do not match")
    return raw


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters are required")


def _kek_from_password(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


# A salt for the key derivation done for a user name that has no slot at all, so
# that "no such user" takes as long as "wrong password" (no timing oracle for
# which names exist). Its result is never used.
_ABSENT_SALT = hashlib.sha256(b"wardcrf: no slot for this name").digest()[:16]


def _gcm_keystream(kek: bytes, nonce: bytes, length: int) -> bytes:
    """The AES-GCM keystream that encrypted a slot's key (NIST SP 800-38D).

    With a 96-bit nonce GCM encrypts plaintext block i (from 1) with
    AES(kek, nonce || i+1): counter 1 is reserved for the tag. Plain AES-CTR
    from counter 2 reproduces it; `test_keyslots` checks this against a slot
    that AESGCM wrote.
    """
    ctr = Cipher(algorithms.AES(kek), modes.CTR(nonce + (2).to_bytes(4, "big"))).encryptor()
    return ctr.update(bytes(length)) + ctr.finalize()


def _retired_check(aad: bytes, keystream: bytes) -> bytes:
    return hashlib.sha256(b"wardcrf retired slot|" + aad + b"|" + keystream).digest()


@dataclass(frozen=True, repr=False)
class Opened:
    """What one slot opened: the database key, and the signing key when the slot carries it.

    `kek` is the slot's key-encryption key, kept only while a sign-in runs so
    that a signing wrap can be added to the slot without a second key
    derivation (`add_signing_wrap`). Never printed (no repr).
    """

    key: bytes
    signing: bytes | None
    slot: str
    kek: bytes
    unblinding: bytes | None = None
    """The ward's unblinding identity (`unblindkeys`), when the slot carries it or a box for it."""


@dataclass(frozen=True, repr=False)
class PasswordCheck:
    """What a user name and password open: a slot, or a retired account, or nothing."""

    opened: Opened | None = None
    retired: bool = False

    @property
    def key(self) -> bytes | None:
        return self.opened.key if self.opened else None


def _kek_from_recovery(raw: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"wardcrf recovery").derive(raw)


@dataclass
class KeySlots:
    """The parsed key-slot file of one data directory."""

    path: Path
    data: dict[str, Any]

    # -- file handling -------------------------------------------------------
    @classmethod
    def create(cls, data_dir: Path, *, site: str, device: str) -> KeySlots:
        path = data_dir / FILENAME
        return cls(path, {"format": FORMAT, "site": site, "device": device, "slots": {}, "failed": {}})

    @classmethod
    def load(cls, data_dir: Path) -> KeySlots:
        path = data_dir / FILENAME
        if not path.exists():
            raise UsageError(
                f"{data_dir} is not a wardcrf data directory (no {FILENAME}); "
                "run `wardcrf init` or pass the right --data-dir"
            )
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path} is unreadable or corrupt: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UsageError(f"{path} is not a wardcrf key-slot file (format {FORMAT} expected)")
        data.setdefault("failed", {})
        return cls(path, data)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialize read-modify-write of the file between processes."""
        lock_path = self.path.with_suffix(".lock")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                if self.path.exists():
                    fresh = json.loads(self.path.read_text("utf-8"))
                    fresh.setdefault("failed", {})
                    self.data = fresh
                before = json.dumps(self.data, sort_keys=True)
                try:
                    yield
                finally:
                    # Saved even when the caller raises: a failed login is
                    # counted precisely when the caller refuses access. Not
                    # rewritten when nothing changed (a full disk must not
                    # stop a user from signing in to free space).
                    if json.dumps(self.data, sort_keys=True) != before:
                        self.save()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def save(self) -> None:
        """Atomic replace: temp file, fsync, rename, fsync the directory."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = json.dumps(self.data, indent=2, sort_keys=True).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)  # the previous file stays as it was
            raise
        os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # -- slots -----------------------------------------------------------------
    @property
    def site(self) -> str:
        return str(self.data["site"])

    @property
    def device(self) -> str:
        return str(self.data["device"])

    def _aad(self, slot: str) -> bytes:
        return f"{FORMAT}|{self.site}|{self.device}|{slot}".encode()

    def has_user(self, username: str) -> bool:
        return f"user:{username}" in self.data["slots"]

    def usernames(self) -> list[str]:
        return sorted(k[5:] for k in self.data["slots"] if k.startswith("user:"))

    def set_user_slot(
        self,
        username: str,
        password: str,
        db_key: bytes,
        signing_key: bytes | None = None,
        *,
        inbox: bool = False,
        unblinding: bytes | None = None,
    ) -> None:
        """Wrap the database key (and the signing key, for a role that signs) under a password.

        `inbox` (a role that may unblind): the slot gets a pair a holder of the
        unblinding identity boxes it to; `unblinding`: the identity itself,
        when the granting session holds it.
        """
        check_password_rules(password)
        salt = secrets.token_bytes(16)
        kek = _kek_from_password(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        nonce = secrets.token_bytes(12)
        name = f"user:{username}"
        wrapped = AESGCM(kek).encrypt(nonce, db_key, self._aad(name))
        self.data["slots"][name] = {
            "kdf": "scrypt",
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": b64e(salt),
            "nonce": b64e(nonce),
            "wrapped": b64e(wrapped),
        }
        if signing_key is not None:
            self.add_signing_wrap(name, kek, signing_key)
        if inbox:
            self.add_inbox(name, kek)
        if unblinding is not None:
            self.add_unblinding_wrap(name, kek, unblinding)

    # -- the unblinding identity (`unblindkeys`) ---------------------------------
    def add_inbox(self, slot_name: str, kek: bytes) -> None:
        """Give a slot an X25519 pair, its secret under the slot's key: a holder boxes the unblinding identity to it."""
        import pyrage

        ident = pyrage.x25519.Identity.generate()
        nonce = secrets.token_bytes(12)
        wrapped = AESGCM(kek).encrypt(nonce, str(ident).encode("ascii"), self._aad(slot_name) + b"|inbox")
        self.data["slots"][slot_name]["inbox"] = {
            "recipient": str(ident.to_public()),
            "nonce": b64e(nonce),
            "wrapped": b64e(wrapped),
        }

    def add_unblinding_wrap(self, slot_name: str, kek: bytes, identity: bytes) -> None:
        """Let a slot carry the unblinding identity under its own key (a box waiting for it is dropped)."""
        nonce = secrets.token_bytes(12)
        wrapped = AESGCM(kek).encrypt(nonce, identity, self._aad(slot_name) + b"|unblinding")
        slot = self.data["slots"][slot_name]
        slot["unblinding"] = {"nonce": b64e(nonce), "wrapped": b64e(wrapped)}
        slot.pop("unblinding_box", None)

    def put_unblinding_box(self, slot_name: str, identity: bytes) -> None:
        """Box the unblinding identity to a slot's inbox: its owner's next sign-in takes it."""
        import pyrage

        slot = self.data["slots"][slot_name]
        recipient = pyrage.x25519.Recipient.from_str(slot["inbox"]["recipient"])
        slot["unblinding_box"] = b64e(pyrage.encrypt(identity, [recipient]))

    def waiting_for_unblinding(self) -> list[str]:
        """Slots with an inbox that carry neither the unblinding identity nor a box of it."""
        return sorted(
            name
            for name, slot in self.data["slots"].items()
            if slot.get("inbox") and not slot.get("unblinding") and not slot.get("unblinding_box")
        )

    def carries_unblinding(self, slot_name: str) -> bool:
        slot = self.data["slots"].get(slot_name)
        return bool(slot and (slot.get("unblinding") or slot.get("unblinding_box")))

    def _unwrap_unblinding(self, slot_name: str, kek: bytes) -> bytes | None:
        slot = self.data["slots"][slot_name]
        aad = self._aad(slot_name)
        try:
            wrap = slot.get("unblinding")
            if wrap:
                return AESGCM(kek).decrypt(b64d(wrap["nonce"]), b64d(wrap["wrapped"]), aad + b"|unblinding")
            box, inbox = slot.get("unblinding_box"), slot.get("inbox")
            if not box or not inbox:
                return None
            import pyrage

            secret = AESGCM(kek).decrypt(b64d(inbox["nonce"]), b64d(inbox["wrapped"]), aad + b"|inbox")
            ident = pyrage.x25519.Identity.from_str(secret.decode("ascii"))
            return bytes(pyrage.decrypt(b64d(box), [ident]))
        except (InvalidTag, ValueError, Exception):  # a damaged wrap opens nothing; the slot still signs in
            return None

    # -- the signing key ---------------------------------------------------------
    def add_signing_wrap(self, slot_name: str, kek: bytes, signing_key: bytes) -> None:
        """Let a slot carry the signing key, under the slot's own key-encryption key."""
        nonce = secrets.token_bytes(12)
        wrapped = AESGCM(kek).encrypt(nonce, signing_key, self._aad(slot_name) + b"|signing")
        self.data["slots"][slot_name]["signing"] = {"nonce": b64e(nonce), "wrapped": b64e(wrapped)}

    def _unwrap_signing(self, slot_name: str, kek: bytes) -> bytes | None:
        wrap = self.data["slots"][slot_name].get("signing")
        if not wrap:
            return None
        try:
            return AESGCM(kek).decrypt(
                b64d(wrap["nonce"]), b64d(wrap["wrapped"]), self._aad(slot_name) + b"|signing"
            )
        except InvalidTag:
            return None

    def carries_signing(self, slot_name: str) -> bool:
        slot = self.data["slots"].get(slot_name)
        return bool(slot and slot.get("signing"))

    def _transition_kek(self, db_key: bytes) -> bytes:
        info = f"wardcrf signing-key transition|{self.site}|{self.device}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(db_key)

    def set_signing_transition(self, db_key: bytes, signing_key: bytes) -> None:
        """The signing key wrapped under the database key, while a site created before it is sealed.

        Whoever holds the database key (every signed-in user) can open it, as
        they could read the secret in clear before: it only lets the slots that
        should carry the signing key pick it up at their owners' next sign-in.
        Dropped as soon as every one of them does (`Site`).
        """
        nonce = secrets.token_bytes(12)
        wrapped = AESGCM(self._transition_kek(db_key)).encrypt(nonce, signing_key, b"transition")
        self.data["signing_transition"] = {"nonce": b64e(nonce), "wrapped": b64e(wrapped)}

    def signing_from_transition(self, db_key: bytes) -> bytes | None:
        wrap = self.data.get("signing_transition")
        if not wrap:
            return None
        try:
            return AESGCM(self._transition_kek(db_key)).decrypt(
                b64d(wrap["nonce"]), b64d(wrap["wrapped"]), b"transition"
            )
        except InvalidTag:
            return None

    @property
    def in_signing_transition(self) -> bool:
        return bool(self.data.get("signing_transition"))

    def drop_signing_transition(self) -> None:
        self.data.pop("signing_transition", None)

    def remove_user_slot(self, username: str) -> None:
        self.data["slots"].pop(f"user:{username}", None)

    def retire_user_slot(self, username: str, db_key: bytes) -> bool:
        """Replace a user's slot by a check of their password that opens nothing.

        The slot's wrapped key is `db_key XOR keystream(kek)`; whoever holds the
        database key (the admin deactivating the user) can recover that
        keystream without knowing the password, and keeps only a hash of it.
        At login the keystream is derived again from the typed password
        (scrypt, as costly as a normal login) and compared: equal means the
        right password of a deactivated user. The database key is not
        derivable from what stays (the wrapped key is gone), and the hash
        gives an offline guesser nothing the old slot did not. Returns False
        when the user had no slot (nothing to retire).
        """
        name = f"user:{username}"
        slot = self.data["slots"].pop(name, None)
        if slot is None:
            return False
        wrapped = b64d(slot["wrapped"])[: len(db_key)]
        keystream = bytes(a ^ b for a, b in zip(wrapped, db_key, strict=True))
        self.data["slots"][RETIRED_PREFIX + username] = {
            "kdf": slot["kdf"],
            "n": slot["n"],
            "r": slot["r"],
            "p": slot["p"],
            "salt": slot["salt"],
            "nonce": slot["nonce"],
            "check": b64e(_retired_check(self._aad(name), keystream)),
        }
        return True

    def is_retired(self, username: str) -> bool:
        return RETIRED_PREFIX + username in self.data["slots"]

    def check_password(self, username: str, password: str) -> PasswordCheck:
        """One key derivation whatever the name: a live slot, a retired one, or none at all.

        The same work in every case, so neither the answer nor the time it
        takes tells a stranger whether a name exists.
        """
        live = self.data["slots"].get(f"user:{username}")
        if live is not None:
            return PasswordCheck(opened=self.open_with_password(username, password))
        retired = self.data["slots"].get(RETIRED_PREFIX + username)
        if retired is None:
            _kek_from_password(password, _ABSENT_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P)
            return PasswordCheck()
        kek = _kek_from_password(
            password, b64d(retired["salt"]), int(retired["n"]), int(retired["r"]), int(retired["p"])
        )
        keystream = _gcm_keystream(kek, b64d(retired["nonce"]), 32)
        expected = b64d(retired["check"])
        return PasswordCheck(
            retired=hmac.compare_digest(_retired_check(self._aad(f"user:{username}"), keystream), expected)
        )

    def set_recovery_slot(self, recovery_raw: bytes, db_key: bytes, signing_key: bytes | None = None) -> None:
        salt = secrets.token_bytes(16)
        kek = _kek_from_recovery(recovery_raw, salt)
        nonce = secrets.token_bytes(12)
        wrapped = AESGCM(kek).encrypt(nonce, db_key, self._aad(RECOVERY_SLOT))
        self.data["slots"][RECOVERY_SLOT] = {
            "kdf": "hkdf-sha256",
            "salt": b64e(salt),
            "nonce": b64e(nonce),
            "wrapped": b64e(wrapped),
        }
        if signing_key is not None:
            self.add_signing_wrap(RECOVERY_SLOT, kek, signing_key)
        self.add_inbox(RECOVERY_SLOT, kek)  # the break-glass key also receives the unblinding identity

    def open_with_password(self, username: str, password: str) -> Opened | None:
        """What the user's slot opens, or None when the password is wrong."""
        name = f"user:{username}"
        slot = self.data["slots"].get(name)
        if slot is None:
            return None
        kek = _kek_from_password(password, b64d(slot["salt"]), int(slot["n"]), int(slot["r"]), int(slot["p"]))
        try:
            key = AESGCM(kek).decrypt(b64d(slot["nonce"]), b64d(slot["wrapped"]), self._aad(name))
        except InvalidTag:
            return None
        return Opened(key, self._unwrap_signing(name, kek), name, kek, self._unwrap_unblinding(name, kek))

    def unwrap_with_password(self, username: str, password: str) -> bytes | None:
        """The database key, or None when the password is wrong."""
        opened = self.open_with_password(username, password)
        return opened.key if opened else None

    def open_recovery(self, recovery_text: str) -> Opened:
        raw = parse_recovery_key(recovery_text)
        slot = self.data["slots"].get(RECOVERY_SLOT)
        if slot is None:
            raise AuthError("this data directory has no recovery slot")
        kek = _kek_from_recovery(raw, b64d(slot["salt"]))
        try:
            key = AESGCM(kek).decrypt(b64d(slot["nonce"]), b64d(slot["wrapped"]), self._aad(RECOVERY_SLOT))
        except InvalidTag:
            raise AuthError("recovery key does not open this data directory") from None
        return Opened(
            key,
            self._unwrap_signing(RECOVERY_SLOT, kek),
            RECOVERY_SLOT,
            kek,
            self._unwrap_unblinding(RECOVERY_SLOT, kek),
        )

    def unwrap_with_recovery(self, recovery_text: str) -> bytes:
        return self.open_recovery(recovery_text).key

    # -- failed logins -----------------------------------------------------------
    def failed_count(self, username: str) -> int:
        return int(self.data["failed"].get(username, {}).get("count", 0))

    def record_failure(self, username: str, at: str) -> int:
        entry = self.data["failed"].setdefault(username, {"count": 0, "pending": []})
        entry["count"] = int(entry.get("count", 0)) + 1
        entry.setdefault("pending", []).append(at)
        return int(entry["count"])

    def clear_failures(self, username: str) -> None:
        self.data["failed"].pop(username, None)

    def record_refused(self, username: str, at: str, why: str) -> None:
        """A right password for an account that may not sign in (deactivated): not a failure, but logged."""
        self.data.setdefault("refused", []).append({"username": username, "at": at, "why": why})

    def take_pending_refusals(self) -> list[dict[str, str]]:
        """Refused sign-ins not yet written to the log; marks them written."""
        out = list(self.data.get("refused") or [])
        if out:
            self.data["refused"] = []
        return out

    def take_pending_failures(self) -> dict[str, list[str]]:
        """Failed attempts not yet written to the log; marks them written."""
        out: dict[str, list[str]] = {}
        for user, entry in self.data["failed"].items():
            pending = entry.get("pending") or []
            if pending:
                out[user] = list(pending)
                entry["pending"] = []
        return out
