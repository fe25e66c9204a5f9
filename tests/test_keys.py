"""Key handling: pseudonyms, envelope encryption, KEK rotation and master key loading."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from fixtures.app import close_log_files
from fixtures.convenants import SECOND_CONVENANT, make_vsv_record
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn, make_record
from sqlalchemy import select

from broker import create_app
from keys.envelope import (
    DecryptionError,
    Sealer,
    generate_key,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
from keys.master import MasterKeyError, create_master_key_file, decode_master_key, load_master_key
from keys.pseudonym import Pseudonymiser

DELIVERIES = "/api/v1/deliveries"


# -- pseudonyms ------------------------------------------------------------------------------------


def test_pseudonym_is_stable_within_a_convenant() -> None:
    """The same BSN under the same key and convenant always gives the same pseudonym."""
    key = generate_key()
    first = Pseudonymiser(key, CONVENANT, "kid-1").pseudonymise_bsn(make_bsn(1))
    again = Pseudonymiser(key, CONVENANT, "kid-1").pseudonymise_bsn(make_bsn(1))
    assert first == again
    assert len(first) == 64 and int(first, 16) >= 0
    assert make_bsn(1) not in first


def test_pseudonyms_of_two_convenants_never_link() -> None:
    """The same BSN gets unrelated pseudonyms in two convenants, even under one shared key."""
    key = generate_key()
    one = Pseudonymiser(key, CONVENANT, "k").pseudonymise_bsn(make_bsn(1))
    two = Pseudonymiser(key, SECOND_CONVENANT, "k").pseudonymise_bsn(make_bsn(1))
    three = Pseudonymiser(generate_key(), SECOND_CONVENANT, "k").pseudonymise_bsn(make_bsn(1))
    assert len({one, two, three}) == 3


def test_pseudonym_domain_separation_is_unambiguous() -> None:
    """Convenant id and BSN cannot be shifted into each other to forge a collision."""
    key = generate_key()
    a = Pseudonymiser(key, "abc", "k").pseudonymise_bsn("1" + make_bsn(1))
    b = Pseudonymiser(key, "abc1", "k").pseudonymise_bsn(make_bsn(1))
    assert a != b


def test_different_bsns_get_different_pseudonyms() -> None:
    """Different BSNs get different pseudonyms."""
    p = Pseudonymiser(generate_key(), CONVENANT, "k")
    assert len({p.pseudonymise_bsn(make_bsn(n)) for n in range(50)}) == 50


def _records(app: Any) -> list[Any]:
    from broker.app.extensions import db
    from broker.models import Record

    with app.app_context():
        return list(
            db.session.execute(
                select(
                    Record.submission_id,
                    Record.seq,
                    Record.pseudonym,
                    Record.pseudonym_kid,
                    Record.payload,
                )
            ).all()
        )


def test_stored_records_carry_pseudonym_and_key_id(app: Any, rbl: Party) -> None:
    """Each stored record has its BSN's pseudonym and the key id; a resubmission matches."""
    from broker.app import runtime
    from broker.app.extensions import db
    from broker.models import KeyMaterial

    assert rbl.submit([make_record(1, gemeente="Duiven"), make_record(2)]).status_code == 201
    assert rbl.submit([make_record(1, gemeente="Zevenaar")]).status_code == 201
    rows = _records(app)
    with app.app_context():
        pseudonymiser = runtime.keyring().pseudonymiser(CONVENANT)
        kids = set(
            db.session.scalars(
                select(KeyMaterial.kid).where(KeyMaterial.scope == CONVENANT, KeyMaterial.purpose == "pseudonym")
            )
        )
        expected = {pseudonymiser.pseudonymise_bsn(make_bsn(n)) for n in (1, 2)}
    assert {r.pseudonym for r in rows} == expected
    assert len([r for r in rows if r.pseudonym == pseudonymiser.pseudonymise_bsn(make_bsn(1))]) == 2
    assert {r.pseudonym_kid for r in rows} == {pseudonymiser.kid}
    assert kids == {pseudonymiser.kid}


def test_same_bsn_in_two_convenants_is_stored_unlinkably(multi_app: Any, make_multi_party: Any) -> None:
    """A pupil in both convenants is stored under different pseudonyms and key ids."""
    rbl = make_multi_party("rbl-midden-gelre")
    gemeente = make_multi_party("gemeente-nijmegen")
    assert rbl.submit([make_record(9)]).status_code == 201
    assert gemeente.submit([make_vsv_record(9)], convenant=SECOND_CONVENANT).status_code == 201
    rows = _records(multi_app)
    assert len(rows) == 2
    assert rows[0].pseudonym != rows[1].pseudonym
    assert rows[0].pseudonym_kid != rows[1].pseudonym_kid


# -- envelope encryption ---------------------------------------------------------------------------


def test_seal_and_open() -> None:
    """What is sealed with a key and AAD opens with the same key and AAD."""
    key = generate_key()
    sealed = seal(key, b"geheim", b"ctx")
    assert b"geheim" not in sealed
    assert open_sealed(key, sealed, b"ctx") == b"geheim"
    assert seal(key, b"geheim", b"ctx") != sealed  # a fresh nonce each time


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda key, sealed, aad: (key, _flip(sealed, 20), aad), id="flipped-ciphertext-bit"),
        pytest.param(lambda key, sealed, aad: (key, _flip(sealed, 0), aad), id="flipped-nonce-bit"),
        pytest.param(
            lambda key, sealed, aad: (key, _flip(sealed, len(sealed) - 1), aad),
            id="flipped-tag-bit",
        ),
        pytest.param(lambda key, sealed, aad: (key, sealed[:-1], aad), id="truncated"),
        pytest.param(lambda key, sealed, aad: (key, sealed[:8], aad), id="shorter-than-nonce"),
        pytest.param(lambda key, sealed, aad: (key, sealed, b"submission/1"), id="wrong-aad"),
        pytest.param(lambda key, sealed, aad: (key, sealed, b""), id="no-aad"),
        pytest.param(lambda key, sealed, aad: (generate_key(), sealed, aad), id="wrong-key"),
    ],
)
def test_tampering_is_detected(tamper: Any) -> None:
    """Changed ciphertext, nonce or tag, a wrong AAD or a wrong key raise DecryptionError."""
    key = generate_key()
    aad = b"submission/0"
    sealed = seal(key, b'{"bsn": "100000009"}', aad)
    args = tamper(key, sealed, aad)
    with pytest.raises(DecryptionError):
        open_sealed(*args)
    with pytest.raises(DecryptionError):
        Sealer(args[0]).open(args[1], args[2])


def test_sealer_round_trip_and_record_binding() -> None:
    """Sealer payloads are bound to their record: moved to another record, it does not open."""
    sealer = Sealer(generate_key())
    one = sealer.seal(b"record 0", b"s/0")
    assert sealer.open(one, b"s/0") == b"record 0"
    with pytest.raises(DecryptionError):
        sealer.open(one, b"s/1")


def test_wrapped_key_is_bound_to_its_context() -> None:
    """A wrapped key unwraps only under the same KEK and context."""
    kek, key = generate_key(), generate_key()
    wrapped = wrap_key(kek, key, "data-key/1")
    assert unwrap_key(kek, wrapped, "data-key/1") == key
    with pytest.raises(DecryptionError):
        unwrap_key(kek, wrapped, "data-key/2")
    with pytest.raises(DecryptionError):
        unwrap_key(generate_key(), wrapped, "data-key/1")


def test_stored_payload_is_bound_to_its_row(app: Any, rbl: Party, liemers: Party) -> None:
    """Swapping two stored payloads in the database makes the delivery fail to decrypt."""
    from broker.app.extensions import db
    from broker.models import Record

    [delivery] = rbl.submit([make_record(1, gemeente="Duiven"), make_record(2, gemeente="Duiven")]).json["deliveries"]
    with app.app_context():
        first, second = db.session.scalars(select(Record).order_by(Record.seq)).all()
        first.payload, second.payload = second.payload, first.payload
        db.session.commit()
    with pytest.raises(DecryptionError):
        liemers.get(f"{DELIVERIES}/{delivery['delivery_id']}")


# -- KEK rotation ----------------------------------------------------------------------------------


def _keks(app: Any) -> list[Any]:
    from broker.app.extensions import db
    from broker.models import KeyMaterial

    with app.app_context():
        return list(
            db.session.scalars(
                select(KeyMaterial)
                .where(KeyMaterial.scope == CONVENANT, KeyMaterial.purpose == "kek")
                .order_by(KeyMaterial.version)
            )
        )


def _data_key_keks(app: Any) -> set[str]:
    from broker.app.extensions import db
    from broker.models import DataKey

    with app.app_context():
        return set(db.session.scalars(select(DataKey.kek_kid)))


def _fetch_all(party: Party) -> list[dict[str, Any]]:
    records = []
    for d in party.get(DELIVERIES).json["deliveries"]:
        response = party.get(f"{DELIVERIES}/{d['delivery_id']}")
        assert response.status_code == 200, response.status_code
        records.extend(response.json["records"])
    return records


def test_rotation_rewraps_and_keeps_every_delivery(app: Any, runner: Any, rbl: Party, liemers: Party) -> None:
    """`keys rotate` re-wraps data keys; earlier deliveries still decrypt; old KEK erased."""
    before = [make_record(n, gemeente="Duiven") for n in range(3)]
    for record in before:
        assert rbl.submit([record]).status_code == 201
    [old] = _keks(app)

    result = runner.invoke(args=["keys", "rotate", "--convenant", CONVENANT])
    assert result.exit_code == 0, result.output
    assert "re-wrapped 3 data keys" in result.output

    retired, new = _keks(app)
    assert retired.kid == old.kid
    assert retired.wrapped is None and retired.retired_at is not None
    assert new.retired_at is None and new.wrapped is not None and new.version == old.version + 1
    assert _data_key_keks(app) == {new.kid}

    after = make_record(9, gemeente="Westervoort")
    assert rbl.submit([after]).status_code == 201
    assert sorted(r["bsn"] for r in _fetch_all(liemers)) == sorted(r["bsn"] for r in [*before, after])


def test_rotation_survives_a_fresh_process(
    app_config: dict[str, Any], app: Any, runner: Any, rbl: Party, liemers: Party
) -> None:
    """After rotation a new app (no cached keys) still decrypts deliveries made before it."""
    for n in range(2):
        assert rbl.submit([make_record(n, gemeente="Duiven")]).status_code == 201
    assert runner.invoke(args=["keys", "rotate", "--convenant", CONVENANT]).exit_code == 0
    assert runner.invoke(args=["keys", "rotate", "--convenant", CONVENANT]).exit_code == 0
    close_log_files()
    fresh = create_app(app_config)
    fresh_liemers = Party(liemers.party_id, liemers.client_id, liemers.key, liemers.alg, fresh.test_client())
    assert sorted(r["bsn"] for r in _fetch_all(fresh_liemers)) == [make_bsn(0), make_bsn(1)]
    keks = _keks(fresh)
    assert [k.wrapped is None for k in keks] == [True, True, False]
    with fresh.app_context():
        from broker.app.extensions import db

        db.engine.dispose()


def test_rotation_of_unknown_convenant_fails(runner: Any) -> None:
    """Rotating keys of an unknown convenant is an error and changes nothing."""
    result = runner.invoke(args=["keys", "rotate", "--convenant", "bestaat-niet"])
    assert result.exit_code != 0
    assert "bestaat-niet" in result.output


def test_master_key_is_not_in_the_database(app: Any, app_config: dict[str, Any], rbl: Party) -> None:
    """The master key is nowhere in the database, nor are data keys in clear."""
    from broker.app.extensions import db

    assert rbl.submit([make_record(1)]).status_code == 201
    master = base64.b64decode(app_config["MASTER_KEY"])
    with app.app_context():
        from broker.models import DataKey, KeyMaterial

        blobs = [bytes(k.wrapped) for k in db.session.scalars(select(KeyMaterial)) if k.wrapped]
        blobs += [bytes(k.wrapped) for k in db.session.scalars(select(DataKey)) if k.wrapped]
    assert blobs
    assert all(master not in blob for blob in blobs)


# -- master key loading ----------------------------------------------------------------------------


def test_master_key_from_value() -> None:
    """A base64 value of 32 bytes is the master key."""
    key = os.urandom(32)
    assert load_master_key(base64.b64encode(key).decode(), None) == key


def test_master_key_from_file(tmp_path: Path) -> None:
    """A key file from `create_master_key_file` is 0600 and loads; it is never overwritten."""
    path = tmp_path / "sub" / "master.key"
    assert create_master_key_file(path) is True
    assert path.stat().st_mode & 0o777 == 0o600
    key = load_master_key(None, path)
    assert len(key) == 32
    assert create_master_key_file(path) is False
    assert load_master_key(None, path) == key


def test_master_key_value_wins_over_file(tmp_path: Path) -> None:
    """When both are set, the value is used."""
    path = tmp_path / "master.key"
    create_master_key_file(path)
    key = os.urandom(32)
    assert load_master_key(base64.b64encode(key).decode(), path) == key


@pytest.mark.parametrize(
    ("value", "file_text", "message"),
    [
        (None, None, "no master key"),
        ("", None, "no master key"),
        (None, "<missing>", "does not exist"),
        ("dit is geen base64!", None, "base64"),
        (base64.b64encode(os.urandom(16)).decode(), None, "32 bytes"),
        (base64.b64encode(os.urandom(33)).decode(), None, "32 bytes"),
        (None, "niet-base64***", "base64"),
        (None, base64.b64encode(os.urandom(31)).decode(), "32 bytes"),
    ],
    ids=[
        "nothing",
        "empty-value",
        "missing-file",
        "bad-base64",
        "16-bytes",
        "33-bytes",
        "file-bad-base64",
        "file-31-bytes",
    ],
)
def test_master_key_errors(tmp_path: Path, value: str | None, file_text: str | None, message: str) -> None:
    """A missing, non-base64 or wrong-length master key raises MasterKeyError saying why."""
    path: Path | None = None
    if file_text is not None:
        path = tmp_path / "master.key"
        if file_text != "<missing>":
            path.write_text(file_text)
    with pytest.raises(MasterKeyError, match=message):
        load_master_key(value, path)


def test_decode_master_key_ignores_surrounding_whitespace() -> None:
    """A key file ending in a newline still decodes."""
    key = os.urandom(32)
    assert decode_master_key(base64.b64encode(key).decode() + "\n") == key


def test_app_with_another_master_key_cannot_read_the_data(
    app_config: dict[str, Any], app: Any, rbl: Party, liemers: Party
) -> None:
    """The data is useless without the master key: another master key cannot unwrap anything."""
    assert rbl.submit([make_record(1, gemeente="Duiven")]).status_code == 201
    close_log_files()
    other = create_app(app_config | {"MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})
    intruder = Party(liemers.party_id, liemers.client_id, liemers.key, liemers.alg, other.test_client())
    with pytest.raises(DecryptionError):
        intruder.request_token()
    with other.app_context():
        from broker.app.extensions import db

        db.engine.dispose()
