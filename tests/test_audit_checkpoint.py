"""Checkpoints in signed notes: the Go reference vectors, round trips and tampering."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import (
    BadSignatureError,
    Checkpoint,
    MalformedNoteError,
    UnknownKeyError,
    compute_key_id,
    format_checkpoint,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    sign_note,
    verifier_key,
    verify_note,
)
from audit.merkle import MerkleTree, hash_leaf, verify_consistency

# -- golang.org/x/mod/sumdb/note note_test.go ----------------------------------------------------
# The reference implementation's own key pair, text and signatures. Ed25519 is deterministic
# (RFC 8032), so signing the text with the private key must give the published note exactly.

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
PETER_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
             "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
ENOCH_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG"
             "01oOTGwnWLox33WWd1RvMc+QQ=\n")


def peter_private_key() -> Ed25519PrivateKey:
    """Return the private key in PETER_SKEY: PRIVATE+KEY+name+id+base64(0x01 || seed)."""
    encoded = PETER_SKEY.split("+", 4)[4]
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded)[1:])


def test_signing_reproduces_the_go_note() -> None:
    """Our signature line is byte for byte the Go reference note's."""
    assert sign_note(TEXT, "PeterNeumann", peter_private_key()) == TEXT + "\n" + PETER_SIG


def test_verifier_key_and_key_id_match_go() -> None:
    """The verifier key text and key ID computed from the private key are the published ones."""
    public_key = peter_private_key().public_key()
    assert verifier_key("PeterNeumann", public_key) == PETER_VKEY
    assert compute_key_id("PeterNeumann", public_key) == bytes.fromhex("c74f20a3")
    parsed = parse_verifier_key(PETER_VKEY)
    assert (parsed.name, parsed.key_id.hex()) == ("PeterNeumann", "c74f20a3")


@pytest.mark.parametrize(
    ("vkeys", "note"),
    [
        (PETER_VKEY, TEXT + "\n" + PETER_SIG),
        (PETER_VKEY, TEXT + "\n" + PETER_SIG + ENOCH_SIG),
        (ENOCH_VKEY, TEXT + "\n" + PETER_SIG + ENOCH_SIG),
        ([PETER_VKEY, ENOCH_VKEY], TEXT + "\n" + PETER_SIG + ENOCH_SIG),
        (PETER_VKEY, TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG),
    ],
)
def test_go_notes_verify(vkeys: str | list[str], note: str) -> None:
    """Notes verify with any known signer; unknown signatures are ignored."""
    assert verify_note(note, vkeys) == TEXT


def test_note_without_a_known_signature_is_refused() -> None:
    """A note only unknown keys signed is refused."""
    with pytest.raises(UnknownKeyError):
        verify_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    with pytest.raises(UnknownKeyError):
        verify_note(TEXT + "\n" + ENOCH_SIG, PETER_VKEY)


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        "\udcff" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2"
                      "pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
        TEXT + "\n" + "- PeterNeumann " + PETER_SIG.split(" ")[2],
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    """The Go reference's malformed notes, and a few more, are refused as malformed."""
    with pytest.raises(MalformedNoteError):
        verify_note(note, PETER_VKEY)


def test_corrupted_signature_is_refused() -> None:
    """A signature by a known key that does not verify rejects the whole note."""
    corrupted = PETER_SIG[:58] + "ABCD" + PETER_SIG[58:]
    with pytest.raises(BadSignatureError):
        verify_note(TEXT + "\n" + corrupted, PETER_VKEY)
    with pytest.raises(BadSignatureError):
        verify_note(TEXT.replace("cryptography", "cryptographY") + "\n" + PETER_SIG, PETER_VKEY)


def mangled_keys() -> list[str]:
    """Return every proper substring of the Go verifier key, and every one-character change."""
    size = len(PETER_VKEY)
    keys = {PETER_VKEY[i:j] for i in range(size) for j in range(i + 1, size + 1)}
    keys |= {PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
             for i in range(len(PETER_VKEY))}
    keys.discard(PETER_VKEY)
    return sorted(keys)


def test_mangled_verifier_keys_are_refused() -> None:
    """No substring or one-character change of a verifier key parses (as in note_test.go)."""
    accepted = []
    for key in [*mangled_keys(),
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"]:
        try:
            parse_verifier_key(key)
        except MalformedNoteError:
            continue
        accepted.append(key)
    assert accepted == []


# -- checkpoints ---------------------------------------------------------------------------------

ORIGIN = "broker.example.nl/audit"
KEY = Ed25519PrivateKey.generate()
VKEY = verifier_key(ORIGIN, KEY.public_key())
TREE = MerkleTree(hash_leaf(bytes([i])) for i in range(20))


def signed(size: int, key: Ed25519PrivateKey = KEY, name: str = ORIGIN) -> str:
    """Return the signed checkpoint of the first `size` leaves of TREE."""
    return sign_note(format_checkpoint(ORIGIN, size, TREE.root(size)), name, key)


@pytest.mark.parametrize("size", [0, 1, 7, 20])
def test_checkpoint_round_trip(size: int) -> None:
    """A signed checkpoint opens to the origin, size and root that were signed."""
    note = signed(size)
    body = f"{ORIGIN}\n{size}\n{base64.b64encode(TREE.root(size)).decode()}\n"
    assert note.startswith(body + "\n\u2014 " + ORIGIN + " ")
    assert open_note(note, VKEY) == Checkpoint(ORIGIN, size, TREE.root(size))


def test_spec_example_checkpoint_parses() -> None:
    """The tlog-checkpoint specification's example body parses; its unknown signer is refused."""
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = parse_checkpoint(body)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert base64.b64encode(checkpoint.root).decode() == body.split("\n")[2]
    note = (body + "\n\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurm"
            "RDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n")
    with pytest.raises(UnknownKeyError):
        open_note(note, VKEY)


def test_extension_lines_round_trip() -> None:
    """Extension lines are kept and signed with the rest."""
    body = format_checkpoint(ORIGIN, 3, TREE.root(3), ["chain 00ff", "x"])
    assert open_note(sign_note(body, ORIGIN, KEY), VKEY).extensions == ("chain 00ff", "x")


@pytest.mark.parametrize(
    ("old", "new"),
    [(f"\n{ORIGIN}\n7\n", f"\n{ORIGIN}\n8\n"), ("\n7\n", "\n6\n"), (ORIGIN, ORIGIN + "x")],
)
def test_tampered_body_is_refused(old: str, new: str) -> None:
    """Changing the signed body breaks the signature."""
    note = "\n" + signed(7)
    assert old in note
    with pytest.raises(BadSignatureError):
        open_note(note.replace(old, new, 1)[1:], VKEY)


@pytest.mark.parametrize("position", [4, 20, 40, 67])
def test_tampered_signature_is_refused(position: int) -> None:
    """Changing any signature byte after the 4-byte key ID breaks the signature."""
    body, line = signed(7).split("\n\n")
    prefix, encoded = line.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(encoded))
    blob[position] ^= 0x80
    note = f"{body}\n\n{prefix} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(BadSignatureError):
        open_note(note, VKEY)


def test_other_keys_are_refused() -> None:
    """A checkpoint signed by another key, even under the same name, is refused."""
    other = Ed25519PrivateKey.generate()
    with pytest.raises(UnknownKeyError):
        open_note(signed(7, other), VKEY)
    with pytest.raises(UnknownKeyError):
        open_note(signed(7, KEY, "other.example"), VKEY)
    assert open_note(signed(7, other), [VKEY, verifier_key(ORIGIN, other.public_key())]).size == 7


def test_cosigned_checkpoint_verifies_for_either_key() -> None:
    """A second signature line (a witness, or a rotated key) is ignored or used as configured."""
    witness = Ed25519PrivateKey.generate()
    witness_vkey = verifier_key("witness.example", witness.public_key())
    body = format_checkpoint(ORIGIN, 9, TREE.root(9))
    cosignature = sign_note(body, "witness.example", witness).split("\n\n")[1]
    note = sign_note(body, ORIGIN, KEY) + cosignature
    assert open_note(note, VKEY) == open_note(note, witness_vkey)


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n7\n",
        f"{ORIGIN}\n07\n{base64.b64encode(bytes(32)).decode()}\n",
        f"{ORIGIN}\n-7\n{base64.b64encode(bytes(32)).decode()}\n",
        f"{ORIGIN}\n+7\n{base64.b64encode(bytes(32)).decode()}\n",
        f"{ORIGIN}\n{2**64}\n{base64.b64encode(bytes(32)).decode()}\n",
        f"{ORIGIN}\n7\n{base64.b64encode(bytes(31)).decode()}\n",
        f"{ORIGIN}\n7\n{base64.b64encode(bytes(32)).decode().rstrip('=')}\n",
        f"{ORIGIN}\n7\n{base64.b64encode(bytes(32)).decode()}",
        f"{ORIGIN}\n7\n{base64.b64encode(bytes(32)).decode()}\n\nextension\n",
        f"\n7\n{base64.b64encode(bytes(32)).decode()}\n",
    ],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    """Sizes with leading zeros or signs, short roots and empty lines are malformed."""
    with pytest.raises(MalformedNoteError):
        parse_checkpoint(body)


@pytest.mark.parametrize(("old", "new"), [(1, 5), (5, 5), (7, 8), (8, 20), (3, 17)])
def test_consecutive_checkpoints_are_consistent(old: int, new: int) -> None:
    """Two checkpoints of one growing log are consistent; a forked log's are not."""
    first, second = open_note(signed(old), VKEY), open_note(signed(new), VKEY)
    proof = TREE.prove_consistency(first.size, second.size)
    assert verify_consistency(first.size, second.size, first.root, second.root, proof)
    forked = MerkleTree([*(TREE.get_node(0, i) for i in range(old - 1)), hash_leaf(b"fork"),
                         *(TREE.get_node(0, i) for i in range(old, 20))])
    fork = open_note(sign_note(format_checkpoint(ORIGIN, new, forked.root(new)), ORIGIN, KEY), VKEY)
    assert not verify_consistency(first.size, fork.size, first.root, fork.root, proof)
    assert not verify_consistency(first.size, fork.size, first.root, fork.root,
                                  forked.prove_consistency(old, new))
