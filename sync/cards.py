"""Device cards: a device's public keys as a small text file people can read.

A card is what a coordinator registers at the hub (`hub register-device`),
what a ward imports to trust its hub (`sync set-hub`), and what an auditor
passes to `audit verify-bundle`. It carries only public material. The
fingerprint line lets someone confirm a card over the phone: the minisign
key id and a short hash of the age recipient.

    wardcrf-card/1
    kind: ward
    site: WUH01
    device: 7K3QW2ZA
    name: lap1
    minisign-key-id: 9A3C12F0B7D45E61
    minisign-public-key: RWRhXtS3...
    age-recipient: age1...
    fingerprint: 9A3C 12F0 B7D4 5E61 / 4F2A 99C1
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from wardcrf.devicekeys import minisign_key_id
from wardcrf.errors import Refused, UsageError
from wardcrf.text import excerpt

FORMAT = "wardcrf-card/1"
_FIELDS = ("kind", "site", "device", "name", "minisign-key-id", "minisign-public-key", "age-recipient")


@dataclass(frozen=True)
class Card:
    kind: str
    site: str
    device: str
    name: str
    key_id: str
    sign_public: str
    age_recipient: str

    @property
    def fingerprint(self) -> str:
        kid = " ".join(self.key_id[i : i + 4] for i in range(0, 16, 4))
        age = hashlib.sha256(self.age_recipient.encode()).hexdigest()[:8].upper()
        return f"{kid} / {age[:4]} {age[4:]}"

    def text(self) -> str:
        values = (
            self.kind,
            self.site,
            self.device,
            self.name,
            self.key_id,
            self.sign_public,
            self.age_recipient,
        )
        body = "".join(f"{k}: {v}\n" for k, v in zip(_FIELDS, values, strict=True))
        return f"{FORMAT}\n{body}fingerprint: {self.fingerprint}\n"

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "site": self.site,
            "device": self.device,
            "name": self.name,
            "key_id": self.key_id,
            "sign_public": self.sign_public,
            "age_recipient": self.age_recipient,
            "fingerprint": self.fingerprint,
        }

    def qr(self) -> str:
        """The card as a terminal QR code (text), for a phone to read at registration."""
        import io

        import segno

        out = io.StringIO()
        segno.make(self.text(), error="l").terminal(out=out, compact=True)
        return out.getvalue()

    @classmethod
    def parse(cls, text: str, source: str = "card") -> Card:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if not lines or lines[0] != FORMAT:
            raise Refused(f"{source} is not a wardcrf device card (first line must be {FORMAT})")
        values: dict[str, str] = {}
        for ln in lines[1:]:
            key, sep, value = ln.partition(":")
            if not sep:
                raise Refused(f"{source}: line {excerpt(ln, quoted=True)} is not 'key: value'")
            values[key.strip()] = value.strip()
        missing = [f for f in _FIELDS if not values.get(f)]
        if missing:
            raise Refused(f"{source} lacks {', '.join(missing)}")
        card = cls(
            values["kind"],
            values["site"],
            values["device"],
            values["name"],
            values["minisign-key-id"],
            values["minisign-public-key"],
            values["age-recipient"],
        )
        for label, value in (("site", card.site), ("device", card.device), ("name", card.name)):
            if len(value) > 40 or not all(c.isalnum() or c in "-_." for c in value):
                raise Refused(
                    f"{source}: {label} {excerpt(value, quoted=True)} must be 1-40 letters, digits, '-', '_' or '.'"
                )
        if card.kind not in ("ward", "hub"):
            raise Refused(f"{source}: kind must be ward or hub, not {card.kind!r}")
        try:
            real_id = minisign_key_id(card.sign_public)
        except Exception:
            raise Refused(f"{source}: minisign-public-key is not a minisign public key") from None
        if real_id != card.key_id:
            raise Refused(
                f"{source}: minisign-key-id {card.key_id} does not match the public key ({real_id})"
            )
        if not re.fullmatch(r"age1[0-9a-z]{58}", card.age_recipient):
            raise Refused(f"{source}: age-recipient must be an age X25519 recipient (age1...)")
        if "fingerprint" in values and values["fingerprint"] != card.fingerprint:
            raise Refused(f"{source}: fingerprint line does not match the keys (card edited?)")
        return card

    @classmethod
    def read(cls, path: Path) -> Card:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read card {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise Refused(f"{path} is not a text device card") from None
        return cls.parse(text, str(path))
