"""C2SP signed notes, checkpoints and tlog-proofs: the specs' examples, accept and refuse, hostile input."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf.errors import Refused
from wardcrf.tlog import checkpoint, merkle, note

# c2sp.org/signed-note, "Example": this vkey verifies this note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# c2sp.org/tlog-checkpoint's example note text.
SPEC_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def _signer(name: str, kind: int = note.ED25519, seed: int = 1) -> note.Signer:
    return note.Signer(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32), kind)


def test_the_spec_example_verifies():
    v = note.Verifier.parse(SPEC_VKEY)
    assert v.vkey == SPEC_VKEY
    opened = note.open_note(SPEC_NOTE, [v])
    assert opened.text == "This is an example message.\n"
    assert opened.verified == (v,)


def test_a_changed_text_is_refused_and_an_unknown_key_is_ignored():
    v = note.Verifier.parse(SPEC_VKEY)
    with pytest.raises(Refused, match="does not verify"):
        note.open_note(SPEC_NOTE.replace("example message", "example massage"), [v])
    other = _signer("example.com/other").verifier
    with pytest.raises(Refused, match="no signature by a known key"):
        note.open_note(SPEC_NOTE, [other])
    # Same name, different key: its id differs, so the line is not its signature.
    impostor = note.Verifier("example.com/foo", note.ED25519, other.public)
    with pytest.raises(Refused, match="no signature by a known key"):
        note.open_note(SPEC_NOTE, [impostor])


def test_sign_and_open_with_a_cosignature():
    hub, witness = _signer("hub.example/wuh"), _signer("auditor.example/w1", note.COSIGNATURE_V1, seed=2)
    signed = note.sign(SPEC_CHECKPOINT, hub)
    cosigned = note.add_signature(signed, witness.signature_line(SPEC_CHECKPOINT, timestamp=1679315147))
    opened = note.open_note(cosigned, [hub.verifier, witness.verifier])
    assert opened.verified == (hub.verifier, witness.verifier)
    assert opened.timestamps == {"auditor.example/w1": 1679315147}
    # A cosignature is over "cosignature/v1\ntime T\n" + text: the same key as a plain signer differs.
    as_plain = note.Verifier(witness.name, note.ED25519, witness.verifier.public)
    with pytest.raises(Refused, match="no signature by a known key"):
        note.open_note(note.sign(SPEC_CHECKPOINT, _signer("x.example/y")), [as_plain])
    # A changed timestamp breaks the cosignature.
    line = witness.signature_line(SPEC_CHECKPOINT, timestamp=5)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[4 + 7] ^= 1
    forged = (
        line.split(" ")[0] + " " + line.split(" ")[1] + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    )
    with pytest.raises(Refused, match="does not verify"):
        note.open_note(note.add_signature(signed, forged), [hub.verifier, witness.verifier])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("no final newline", "newline"),
        ("bell \x07 inside\n", "U\\+0007"),
        ("escape \x1b[2J\n", "U\\+001B"),
        ("\n", "non-empty"),
    ],
)
def test_note_text_rules(text, why):
    with pytest.raises(Refused, match=why):
        note.sign(text, _signer("a.example/b"))


@pytest.mark.parametrize(
    ("mangle", "why"),
    [
        (lambda n: n.replace("\n\n", "\n"), "blank line|signature line"),
        (lambda n: n + "not a signature\n", "not a signature line"),
        (lambda n: n.replace("\u2014 ", "-- "), "not a signature line"),
        (lambda n: n.replace("Uw2Q", "Uw2Q!"), "base64"),
        (lambda n: n.replace("example.com/foo ", "example com/foo "), "signature line|key name"),
        (lambda n: n + ("\u2014 a.example/b AAAAAAAA\n" * 101), "at most"),
        (lambda n: n.replace("This", "Th\x00is"), "U\\+0000"),
        (lambda n: "x" * (70 * 1024) + n, "larger than"),
        (lambda n: n.rstrip("\n"), "final newline"),
    ],
)
def test_hostile_notes_are_refused_in_one_line(mangle, why):
    v = note.Verifier.parse(SPEC_VKEY)
    with pytest.raises(Refused, match=why) as e:
        note.open_note(mangle(SPEC_NOTE), [v])
    assert "\n" not in str(e.value)


def test_a_vkey_whose_base64_holds_a_plus_round_trips():
    """base64 uses '+': only the first two '+' separate name, id and key (found by a random hub key)."""
    signer = next(
        s
        for s in (_signer("hub.example/x", seed=i) for i in range(1, 256))
        if "+" in s.verifier.vkey.split("+", 2)[2]
    )
    assert note.Verifier.parse(signer.verifier.vkey) == signer.verifier


@pytest.mark.parametrize(
    "vkey",
    [
        "example.com/foo+530d903a",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U",
        "example.com/foo+530d903a+BekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ],
)
def test_bad_verifier_keys_are_refused(vkey):
    with pytest.raises(Refused):
        note.Verifier.parse(vkey)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzzed_notes_are_refused_or_verified_never_crash(data):
    v = note.Verifier.parse(SPEC_VKEY)
    raw = bytearray(SPEC_NOTE.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=3))
        elif len(raw) > 1:
            del raw[pos]
    text = raw.decode("utf-8", "replace")
    try:
        opened = note.open_note(text, [v])
    except Refused as e:
        assert "\n" not in str(e)
    else:
        assert opened.text == "This is an example message.\n"


def test_checkpoint_text_is_the_spec_format():
    cp = checkpoint.Checkpoint.parse(SPEC_CHECKPOINT)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert cp.text() == SPEC_CHECKPOINT


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("o\n007\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "leading zeros"),
        ("o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "decimal"),
        ("o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n", "base64"),
        ("o\n1\nAAAA\n", "bytes"),
        ("o\n1\n", "three"),
        ("o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\nx\n", "three non-empty"),
        ("o\n\u0661\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "decimal"),
    ],
)
def test_bad_checkpoints_are_refused(text, why):
    with pytest.raises(Refused, match=why):
        checkpoint.Checkpoint.parse(text)


def _log(n: int) -> tuple[merkle.Tree, list[bytes]]:
    leaves = [f"bundle {i}".encode() for i in range(n)]
    return merkle.Tree([merkle.leaf_hash(x) for x in leaves]), leaves


def test_a_receipt_proof_verifies_offline_and_names_what_is_wrong():
    hub = _signer("hub.example/wuh")
    w1, w2 = (_signer(f"w{i}.example/a", note.COSIGNATURE_V1, seed=10 + i) for i in (1, 2))
    tree, leaves = _log(13)
    cp = checkpoint.Checkpoint("hub.example/wuh", tree.size, merkle.root(tree))
    signed = note.add_signature(cp.sign(hub), w1.signature_line(cp.text(), timestamp=1_700_000_000))
    proof = checkpoint.Proof(5, tuple(merkle.inclusion_proof(tree, 5, tree.size)), signed).text()
    assert proof.startswith("c2sp.org/tlog-proof@v1\nindex 5\n")
    got = checkpoint.verify_proof(proof, merkle.leaf_hash(leaves[5]), hub.verifier, [w1.verifier], quorum=1)
    assert got.checkpoint == cp
    with pytest.raises(Refused, match="not in the signed tree"):
        checkpoint.verify_proof(proof, merkle.leaf_hash(leaves[6]), hub.verifier)
    with pytest.raises(Refused, match="1 known witness"):
        checkpoint.verify_proof(
            proof, merkle.leaf_hash(leaves[5]), hub.verifier, [w1.verifier, w2.verifier], 2
        )
    other = _signer("hub.example/wuh", seed=99)
    with pytest.raises(Refused, match="no signature by a known key"):
        checkpoint.verify_proof(proof, merkle.leaf_hash(leaves[5]), other.verifier)
    wrong_origin = _signer("other.example/log", seed=3)
    with pytest.raises(Refused, match="origin"):
        checkpoint.open_checkpoint(cp.sign(wrong_origin), wrong_origin.verifier)
    parsed = checkpoint.Proof.parse(proof)
    assert parsed.index == 5 and parsed.signed_checkpoint == signed


@pytest.mark.parametrize(
    ("mangle", "why"),
    [
        (lambda p: p.replace("c2sp.org/tlog-proof@v1", "tlog-proof"), "first line"),
        (lambda p: p.replace("index 5", "index 05"), "leading zeros"),
        (lambda p: p.replace("index 5", "idx 5"), "index"),
        (lambda p: p.replace("\n\n", "\n", 1), "blank line|not base64"),
        (lambda p: p.replace("index 5\n", "index 5\n%%%\n"), "base64"),
        (lambda p: p.replace("index 5\n", "index 5\n" + "AAAA\n" * 65), "64 hashes"),
    ],
)
def test_hostile_proofs_are_refused(mangle, why):
    hub = _signer("hub.example/wuh")
    tree, _ = _log(8)
    cp = checkpoint.Checkpoint("hub.example/wuh", tree.size, merkle.root(tree))
    proof = checkpoint.Proof(5, tuple(merkle.inclusion_proof(tree, 5, 8)), cp.sign(hub)).text()
    with pytest.raises(Refused, match=why):
        checkpoint.verify_proof(mangle(proof), merkle.leaf_hash(b"bundle 5"), hub.verifier)
