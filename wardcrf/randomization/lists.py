"""Allocation lists: permuted blocks of random sizes, per stratum, from a recorded seed.

The seed is 32 bytes from the OS CSPRNG (`secrets`). Every random choice
(each block's size, the order of arms inside it, kit numbers, the salts that
hide each entry's digest) is drawn from HMAC-SHA256(seed, purpose | counter),
an HMAC-DRBG-like stream: unpredictable without the seed, and reproducible
with it, so an auditor given the sealed seed can regenerate the list and
compare its SHA-256 with the one the hub recorded. Integers are drawn by
rejection sampling (no modulo bias) and shuffles are Fisher-Yates.

A list is made of whole blocks: each stratum gets blocks until it holds at
least the number of entries asked for, so the ratio holds inside every
block and the block structure is never cut.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from .design import Design

METHOD = "permuted_blocks"
STREAM = "HMAC-SHA256(seed, purpose|counter), rejection sampling, Fisher-Yates"
MAX_PER_STRATUM = 10_000
"""Entries asked per stratum at most (a list is one event body; far beyond any ward trial)."""
KIT_DIGITS = 6


def new_seed() -> bytes:
    """32 bytes from the OS CSPRNG: the only source of the list's randomness."""
    return secrets.token_bytes(32)


def new_list_id() -> str:
    """A new list's id ("L" and 12 hex digits from the CSPRNG). It names the list and, with the seed, keys
    every stream `generate` draws from, so the two together are what makes one list."""
    return "L" + secrets.token_hex(6).upper()


class Stream:
    """Deterministic random integers from a seed, one independent stream per purpose."""

    def __init__(self, seed: bytes, purpose: str) -> None:
        self._seed = seed
        self._purpose = purpose.encode("utf-8")
        self._counter = 0
        self._pool = b""

    def _bytes(self, n: int) -> bytes:
        while len(self._pool) < n:
            self._counter += 1
            block = hmac.new(self._seed, self._purpose + b"|" + str(self._counter).encode(), hashlib.sha256)
            self._pool += block.digest()
        out, self._pool = self._pool[:n], self._pool[n:]
        return out

    def below(self, n: int) -> int:
        """A uniform integer in [0, n), without modulo bias."""
        if n <= 0:
            raise ValueError("below() needs a positive bound")
        bits = max(1, (n - 1).bit_length())
        nbytes = (bits + 7) // 8
        mask = (1 << bits) - 1
        while True:
            v = int.from_bytes(self._bytes(nbytes), "big") & mask
            if v < n:
                return v

    def shuffle(self, items: list[Any]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def hex(self, nbytes: int) -> str:
        return self._bytes(nbytes).hex()


@dataclass(frozen=True)
class Entry:
    """One line of the list: in stratum `stratum`, the `position`-th participant gets `arm` (and `kit`)."""

    stratum: str
    position: int
    block: int
    block_size: int
    arm: str
    kit: str | None
    salt: str
    """32 hex digits that make each sealed entry's digest unguessable from the few possible arms."""

    def as_dict(self) -> dict[str, Any]:
        d = {
            "stratum": self.stratum,
            "position": self.position,
            "block": self.block,
            "block_size": self.block_size,
            "arm": self.arm,
            "salt": self.salt,
        }
        if self.kit is not None:
            d["kit"] = self.kit
        return d


@dataclass(frozen=True)
class AllocationList:
    """A generated list with everything needed to reproduce and check it."""

    list_id: str
    site: str
    design: Design
    per_stratum: int
    entries: tuple[Entry, ...]

    def header(self) -> dict[str, Any]:
        d = self.design
        return {
            "list": self.list_id,
            "site": self.site,
            "protocol": {"id": d.protocol_id, "version": d.protocol_version, "sha256": d.protocol_sha256},
            "method": METHOD,
            "stream": STREAM,
            "arms": [{"code": c, "ratio": w} for c, w in d.arms],
            "block_sizes": list(d.block_sizes),
            "stratify_by": list(d.stratify_by),
            "strata": d.strata(self.site),
            "factors": [f.declaration() for f in d.factors],
            "reveal": d.reveal,
            "kit_use": d.kit_use,
            "unblinding": d.unblinding,
            "per_stratum": self.per_stratum,
        }

    def document(self) -> bytes:
        """The plaintext list as one canonical JSON document: what `sha256` is taken over."""
        doc = {"header": self.header(), "entries": [e.as_dict() for e in self.entries]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def sha256(self) -> str:
        return hashlib.sha256(self.document()).hexdigest()

    def by_stratum(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {}
        for e in self.entries:
            out.setdefault(e.stratum, []).append(e)
        return out


def generate(design: Design, site: str, per_stratum: int, seed: bytes, list_id: str) -> AllocationList:
    """The list for one site: whole permuted blocks of random sizes in every stratum.

    Deterministic in (design, site, per_stratum, seed, list_id): the same
    inputs give byte-identical documents (how an auditor checks a list).
    """
    if not 1 <= per_stratum <= MAX_PER_STRATUM:
        raise ValueError(f"entries per stratum must be 1 to {MAX_PER_STRATUM}")
    if len(seed) != 32:
        raise ValueError("the seed is 32 bytes")
    entries: list[Entry] = []
    kits = _KitNumbers(Stream(seed, f"{list_id}|kits")) if design.blinded else None
    for stratum in design.strata(site):
        stream = Stream(seed, f"{list_id}|{stratum}")
        position = 0
        block = 0
        while position < per_stratum:
            block += 1
            size = design.block_sizes[stream.below(len(design.block_sizes))]
            arms = [code for code, weight in design.arms for _ in range(weight * size // design.ratio_sum)]
            stream.shuffle(arms)
            for arm in arms:
                position += 1
                entries.append(
                    Entry(
                        stratum=stratum,
                        position=position,
                        block=block,
                        block_size=size,
                        arm=arm,
                        kit=kits.next() if kits is not None else None,
                        salt=stream.hex(16),
                    )
                )
    return AllocationList(list_id, site, design, per_stratum, tuple(entries))


class _KitNumbers:
    """Unique kit numbers drawn at random, so a kit's number says nothing of its arm or its order."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.used: set[str] = set()

    def next(self) -> str:
        while True:
            kit = f"K{self.stream.below(10**KIT_DIGITS):0{KIT_DIGITS}d}"
            if kit not in self.used:
                self.used.add(kit)
                return kit
