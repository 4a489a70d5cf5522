"""The hub's transparency log: RFC 9162 Merkle proofs and C2SP signed checkpoints (issue 21).

`merkle` (hashes, inclusion and consistency proofs), `note` (C2SP signed
notes and Ed25519 cosignatures), `checkpoint` (tree heads and offline
tlog-proofs). Pure functions over bytes and text, no database: the hub, the
ward, a witness and `audit verify-log` share them.
"""
