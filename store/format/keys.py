"""Key slots, the key set and the keyring (FORMAT.md §2 and §3).

The keyring holds the repository's secrets. Each key slot seals the keyring to
its own public key; a password slot keeps its private key encrypted under the
password (Argon2id), an escrow slot keeps only an administrator's public key.
Because boxes are sealed to public keys, rotation rewraps every slot without
knowing any password.

The slots live together in one object, the key set (``keys/keyset``), so that
every change of the slots (a rotation included) is one atomic write. A slot
belongs to the repository only if its MAC verifies under the current epoch's
data key: rotation changes that key, so nobody who held an older keyring (a
removed slot, a former administrator) can make a slot that a later rotation
would accept. Repositories written before the key set keep one ``keys/<slot
id>`` file per slot ("legacy" slots, MAC keyed by the root secret); they open
as before and are moved into a key set by the next key operation.

All functions are pure (no I/O) and thread-safe.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from store.errors import IntegrityError, KeySlotDamaged, StoreError
from store.format.codec import U32_MAX, decode, encode, field_bytes, field_int
from store.format.crypto import ZERO_NONCE, derive, keyed_hash
from store.names import KEYS, slot_name

SLOT_FORMAT = "coffer-key"
SLOT_VERSION = 1

KEYSET_FORMAT = "coffer-keyset"
KEYSET_VERSION = 1
# A key set holds at most MAX_SLOTS slots of a few KiB each; anything much
# larger is damage or hostile, and is refused before it is parsed.
MAX_KEYSET_BYTES = 1024 * 1024
MAX_KEYSET_ENTRIES = 64

# Argon2id parameters a slot may ask for (FORMAT.md §3). A slot beyond them is
# treated as damaged before the KDF runs: a hostile or corrupted slot must not
# make ``open`` allocate gigabytes or spin for minutes. The cost bound
# (memory x passes) keeps one slot at most ~20 times the default's work.
MAX_KDF_MEMORY_KIB = 1024 * 1024
MAX_KDF_ITERATIONS = 16
MAX_KDF_LANES = 16
MAX_KDF_COST_KIB = 4 * 1024 * 1024


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost. The defaults follow RFC 9106's second recommendation
    (64 MiB, 3 passes) and take about a third of a second here."""

    iterations: int = 3
    lanes: int = 4
    memory_kib: int = 65536

    def problem(self) -> str | None:
        """Why these parameters are beyond the accepted bounds, or None. Pure."""
        if not 1 <= self.iterations <= MAX_KDF_ITERATIONS:
            return f"Argon2id passes {self.iterations} outside 1..{MAX_KDF_ITERATIONS}"
        if not 1 <= self.lanes <= MAX_KDF_LANES:
            return f"Argon2id lanes {self.lanes} outside 1..{MAX_KDF_LANES}"
        if not 8 * self.lanes <= self.memory_kib <= MAX_KDF_MEMORY_KIB:
            low = 8 * self.lanes
            return f"Argon2id memory {self.memory_kib} KiB outside {low}..{MAX_KDF_MEMORY_KIB}"
        if self.memory_kib * self.iterations > MAX_KDF_COST_KIB:
            return (
                f"Argon2id cost {self.memory_kib} KiB x {self.iterations} passes "
                f"above {MAX_KDF_COST_KIB} KiB-passes"
            )
        return None

    def derive(self, password: bytes, salt: bytes) -> bytes:
        """The 32-byte Argon2id (version 0x13) hash of ``password``.

        Computed by libargon2 (argon2-cffi) with one thread per lane: the same
        bytes as a single-threaded computation (the lanes are the parameter,
        threads only how they are scheduled), on every core the machine has
        free. It is the largest single cost of a small no-change backup
        (docs/performance.md), paid by every command that opens the repository.
        """
        return hash_secret_raw(
            password,
            salt,
            time_cost=self.iterations,
            memory_cost=self.memory_kib,
            parallelism=self.lanes,
            hash_len=32,
            type=Type.ID,
        )


# How a password slot's wrapping key is computed: ``KdfParams.derive`` here,
# or the same computation elsewhere (store/pipeline/kdf.py runs it in a child
# process so the command never maps Argon2id's memory).
Derive = Callable[[KdfParams, bytes, bytes], bytes]


@dataclass(frozen=True)
class Keyring:
    """The repository's secrets: the root secret and one data key per epoch."""

    root: bytes
    epochs: dict[int, bytes] = field(default_factory=dict)
    current: int = 0

    @classmethod
    def generate(cls) -> Keyring:
        return cls(root=os.urandom(32), epochs={0: os.urandom(32)}, current=0)

    def rotated(self) -> Keyring:
        """A keyring with a fresh data key made current; old epochs kept."""
        new_epoch = max(self.epochs) + 1
        epochs = dict(self.epochs)
        epochs[new_epoch] = os.urandom(32)
        return Keyring(root=self.root, epochs=epochs, current=new_epoch)

    @property
    def current_key(self) -> bytes:
        return self.epochs[self.current]

    def epoch_key(self, epoch: int, what: str) -> bytes:
        """The data key of ``epoch``. Raises IntegrityError if the keyring lacks it."""
        try:
            return self.epochs[epoch]
        except KeyError:
            raise IntegrityError(f"{what}: written with unknown key epoch {epoch}") from None

    @cached_property
    def blob_id_key(self) -> bytes:
        return derive("coffer v1 blob id", self.root)

    @cached_property
    def tree_split_key(self) -> bytes:
        return derive("coffer v1 tree split", self.root)

    @cached_property
    def slot_mac_key(self) -> bytes:
        """The MAC key of legacy ``keys/<slot id>`` files (never rotates)."""
        return derive("coffer v1 slot mac", self.root)

    def epoch_slot_mac_key(self, epoch: int) -> bytes | None:
        """The MAC key of key-set slots of ``epoch``, or None if the epoch is unknown.

        Derived from the epoch's data key, so a rotation changes it.
        """
        key = self.epochs.get(epoch)
        return None if key is None else derive("coffer v2 slot mac", key)

    def fingerprint(self) -> str:
        """A public name of the root secret (16 hex), for the local anchor."""
        return derive("coffer v1 root fingerprint", self.root)[:8].hex()

    def extends(self, older: Keyring) -> bool:
        """True if this keyring holds every secret of ``older`` (same root, same epochs)."""
        return self.root == older.root and all(
            self.epochs.get(epoch) == key for epoch, key in older.epochs.items()
        )

    @cached_property
    def chunker_seed(self) -> int:
        # 63 bits: pyfastcdc shifts the seed left by one inside a u64.
        raw = int.from_bytes(derive("coffer v1 chunker seed", self.root)[:8], "big")
        return (raw & ((1 << 63) - 1)) | 1

    def encode(self) -> bytes:
        return encode({"v": 1, "root": self.root, "epochs": self.epochs, "current": self.current})

    @classmethod
    def decode(cls, raw: bytes) -> Keyring:
        data = decode(raw, "keyring")
        try:
            # field_*: no bytes()/int() of hostile values (anyone can seal a box
            # to a slot's public key; bytes(2**40) would allocate a terabyte).
            epochs = {
                field_int(k, "keyring", "epoch", 0, U32_MAX): field_bytes(v, "keyring", "epoch key")
                for k, v in data["epochs"].items()
            }
            keyring = cls(
                root=field_bytes(data["root"], "keyring", "root"),
                epochs=epochs,
                current=field_int(data["current"], "keyring", "current epoch", 0, U32_MAX),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"keyring is malformed: {exc}") from exc
        if len(keyring.root) != 32 or keyring.current not in keyring.epochs:
            raise IntegrityError("keyring is malformed")
        return keyring


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise IntegrityError(f"{what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise IntegrityError(f"{what} is not base64") from exc


def default_label() -> str:
    """``user@host`` of the process, for a new slot's label."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# The ciphertexts, the MAC and the MAC's epoch, which rotation changes
# without the password (FORMAT.md §3): left out of the public part.
_SEALED_FIELDS = ("private_key", "keyring", "mac", "epoch")


def _public_part(fields: dict[str, Any]) -> bytes:
    """Canonical JSON of every slot field but the two ciphertexts.

    Bound into both ciphertexts' associated data, so no byte of a slot
    (label, KDF parameters, public key) can change unnoticed.
    """
    public = {k: v for k, v in fields.items() if k not in _SEALED_FIELDS}
    return json.dumps(public, sort_keys=True, separators=(",", ":")).encode()


def _box_ad(repo_id: str, fields: dict[str, Any]) -> bytes:
    return b"coffer-box-v1" + repo_id.encode() + _public_part(fields)


def _private_ad(repo_id: str, fields: dict[str, Any]) -> bytes:
    return b"coffer-key-v1" + repo_id.encode() + _public_part(fields)


def _canonical(fields: dict[str, Any]) -> bytes:
    """The one byte form a slot is written in (and must be read back in)."""
    return json.dumps(fields, indent=1, sort_keys=True).encode()


def _slot_mac(fields: dict[str, Any], keyring: Keyring) -> str | None:
    """The MAC ``fields`` should carry, or None when the keyring cannot compute it.

    Key-set slots (with ``epoch``) use the epoch's slot MAC key; legacy slots
    the root's.
    """
    body = {k: v for k, v in fields.items() if k != "mac"}
    if "epoch" in fields:
        epoch = fields["epoch"]
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            return None
        key = keyring.epoch_slot_mac_key(epoch)
        if key is None:
            return None
    else:
        key = keyring.slot_mac_key
    return keyed_hash(key, _canonical(body)).hex()


def _with_mac(fields: dict[str, Any], keyring: Keyring) -> dict[str, Any]:
    """``fields`` stamped with the keyring's current epoch and MACed under it."""
    out = {k: v for k, v in fields.items() if k != "mac"}
    out["epoch"] = keyring.current
    mac = _slot_mac(out, keyring)
    assert mac is not None  # the current epoch is always in the keyring
    out["mac"] = mac
    return out


PublicKey = x25519.X25519PublicKey | rsa.RSAPublicKey


def load_public_key(pem: bytes) -> PublicKey:
    """Parse an X25519 or RSA public key (PEM, or a certificate). Raises StoreError."""
    try:
        if b"CERTIFICATE" in pem:
            from cryptography import x509

            key: object = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise StoreError(f"cannot read the public key: {exc}") from exc
    if isinstance(key, x25519.X25519PublicKey | rsa.RSAPublicKey):
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            raise StoreError("RSA escrow keys must have at least 2048 bits")
        return key
    raise StoreError("escrow keys must be X25519 or RSA public keys")


def _seal_box(public: PublicKey, keyring: Keyring, ad: bytes) -> bytes:
    plaintext = keyring.encode()
    if isinstance(public, x25519.X25519PublicKey):
        ephemeral = x25519.X25519PrivateKey.generate()
        eph_pub = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(public)
        key = derive("coffer v1 slot box", shared + eph_pub + public.public_bytes_raw())
        return eph_pub + AESGCM(key).encrypt(ZERO_NONCE, plaintext, ad)
    key = os.urandom(32)
    wrapped = public.encrypt(
        key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return (
        len(wrapped).to_bytes(2, "big") + wrapped + AESGCM(key).encrypt(ZERO_NONCE, plaintext, ad)
    )


def _open_box(
    private: x25519.X25519PrivateKey | rsa.RSAPrivateKey, box: bytes, ad: bytes
) -> Keyring:
    try:
        if isinstance(private, x25519.X25519PrivateKey):
            eph_pub = box[:32]
            shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(eph_pub))
            own_pub = private.public_key().public_bytes_raw()
            key = derive("coffer v1 slot box", shared + eph_pub + own_pub)
            plaintext = AESGCM(key).decrypt(ZERO_NONCE, box[32:], ad)
        else:
            size = int.from_bytes(box[:2], "big")
            key = private.decrypt(
                box[2 : 2 + size],
                padding.OAEP(
                    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
                ),
            )
            plaintext = AESGCM(key).decrypt(ZERO_NONCE, box[2 + size :], ad)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError("the key slot's keyring box does not open: slot damaged") from exc
    return Keyring.decode(plaintext)


@dataclass
class KeySlot:
    """One ``keys/<slot id>`` object, parsed."""

    slot_id: str
    kind: str
    label: str
    created: str
    fields: dict[str, Any]

    @property
    def legacy_name(self) -> str:
        """The object name of this slot in repositories older than the key set
        (``keys/<slot id>``); not a cryptographic key."""
        return slot_name(self.slot_id)

    @property
    def name(self) -> str:
        """How messages name this slot: ``key slot <first 8 hex>``."""
        return f"key slot {self.slot_id[:8]}"

    @property
    def epoch(self) -> int | None:
        """The epoch whose key MACs this slot; None for a legacy slot."""
        epoch = self.fields.get("epoch")
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None

    def to_json(self) -> bytes:
        return _canonical(self.fields)

    def authenticate(self, keyring: Keyring) -> str | None:
        """Why this key-set slot is not one of the repository's current slots, or None.

        A current slot is MACed under the keyring's current epoch. A slot of
        an older epoch was removed or replaced before a rotation (or planted
        by someone who held an older keyring); a slot whose MAC does not
        verify was planted or damaged. Pure; never raises.
        """
        if self.epoch is None:
            return "has no key epoch (not a key-set slot)"
        if self.epoch != keyring.current:
            return (
                f"belongs to key epoch {self.epoch}, not the current {keyring.current} "
                "(removed or replaced before a rotation, or planted)"
            )
        if self.fields.get("mac") != _slot_mac(self.fields, keyring):
            return "authentication code does not match (planted, or altered)"
        return None

    def verify(self, raw: bytes, keyring: Keyring) -> str | None:
        """Why the stored bytes ``raw`` of this slot are not authentic, or None.

        Every byte counts: the file must be the canonical JSON of its fields
        and its ``mac`` (keyed by the keyring's root) must match them, so a
        slot altered or damaged anywhere is found by anyone who can open the
        repository through any slot. Pure; never raises.
        """
        if raw != self.to_json():
            return "not in canonical form (bytes altered)"
        if self.epoch is not None:
            return self.authenticate(keyring)
        mac = self.fields.get("mac")
        if not isinstance(mac, str):
            return (
                "has no authentication code (planted, or written by a Coffer older than slot MACs)"
            )
        if mac != _slot_mac(self.fields, keyring):
            return "authentication code does not match (slot altered or damaged)"
        return None

    @classmethod
    def parse(cls, raw: bytes, name: str) -> KeySlot:
        """Parse a legacy slot file. Raises IntegrityError when it is not a valid slot."""
        try:
            fields = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"{name} is damaged: {exc}") from exc
        return cls.from_fields(fields, name)

    @classmethod
    def from_fields(cls, fields: object, name: str) -> KeySlot:
        """A slot from its JSON fields. Raises IntegrityError when they are not a slot."""
        try:
            if not isinstance(fields, dict):
                raise IntegrityError(f"{name} is not a Coffer key slot")
            if fields.get("format") != SLOT_FORMAT:
                raise IntegrityError(f"{name} is not a Coffer key slot")
            if int(fields["version"]) > SLOT_VERSION:
                raise IntegrityError(f"{name}: unknown key slot version {fields['version']}")
            if name.startswith(KEYS) and name != slot_name(fields["slot"]):
                raise IntegrityError(f"{name} names slot {fields['slot']}: moved or damaged")
            return cls(
                slot_id=str(fields["slot"]),
                kind=str(fields["kind"]),
                label=str(fields.get("label", "")),
                created=str(fields.get("created", "")),
                fields=fields,
            )
        # OverflowError: JSON allows Infinity, and int(Infinity) overflows (found by fuzzing).
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise IntegrityError(f"{name} is damaged: {exc}") from exc

    def public_key(self) -> PublicKey:
        info = self.fields.get("public_key") or {}
        return load_public_key(str(info.get("pem", "")).encode())

    def kdf_params(self) -> KdfParams:
        """This password slot's Argon2id parameters, checked against the bounds.

        Raises IntegrityError when they are malformed or out of bounds (before
        any KDF runs).
        """
        try:
            kdf_fields = self.fields["kdf"]
            if kdf_fields.get("name") != "argon2id":
                raise IntegrityError(
                    f"{self.name}: unknown key derivation {kdf_fields.get('name')}"
                )
            params = KdfParams(
                iterations=int(kdf_fields["iterations"]),
                lanes=int(kdf_fields["lanes"]),
                memory_kib=int(kdf_fields["memory_kib"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"{self.name} is damaged: {exc}") from exc
        problem = params.problem()
        if problem is not None:
            raise IntegrityError(f"{self.name} is refused: {problem}")
        return params

    def rewrapped(self, repo_id: str, keyring: Keyring) -> KeySlot:
        """This slot with its box resealed to ``keyring`` and MACed under its current epoch."""
        fields = dict(self.fields)
        fields["keyring"] = _b64(_seal_box(self.public_key(), keyring, _box_ad(repo_id, fields)))
        fields = _with_mac(fields, keyring)
        return KeySlot(self.slot_id, self.kind, self.label, self.created, fields)

    def open_with_password(
        self, repo_id: str, password: bytes, *, derive: Derive = KdfParams.derive
    ) -> Keyring | None:
        """The keyring, or None if the password is not this slot's.

        ``derive`` computes the wrapping key (the same bytes wherever it runs).
        Raises IntegrityError if the password is right but the slot is damaged.
        """
        if self.kind != "password":
            return None
        params = self.kdf_params()
        salt = _unb64(self.fields["kdf"].get("salt"), f"{self.name} salt")
        if len(salt) < 8:
            raise IntegrityError(f"{self.name} is damaged: salt too short")
        wrapping = derive(params, password, salt)
        sealed_private = _unb64(self.fields.get("private_key"), f"{self.name} private key")
        try:
            raw_private = AESGCM(wrapping).decrypt(
                ZERO_NONCE, sealed_private, _private_ad(repo_id, self.fields)
            )
        except InvalidTag:
            return None
        private = x25519.X25519PrivateKey.from_private_bytes(raw_private)
        return self._open_own_box(repo_id, private)

    def _open_own_box(
        self, repo_id: str, private: x25519.X25519PrivateKey | rsa.RSAPrivateKey
    ) -> Keyring:
        # The secret matched this slot: a failure from here on is damage, not
        # a wrong password.
        try:
            box = _unb64(self.fields.get("keyring"), f"{self.name} keyring")
            keyring = _open_box(private, box, _box_ad(repo_id, self.fields))
        except IntegrityError as exc:
            raise KeySlotDamaged(f"{self.name}: {exc}") from exc
        mac = self.fields.get("mac")
        if mac is not None and mac != _slot_mac(self.fields, keyring):
            raise KeySlotDamaged(f"{self.name}: authentication code does not match")
        return keyring

    def open_with_private_key(
        self, repo_id: str, private: x25519.X25519PrivateKey | rsa.RSAPrivateKey
    ) -> Keyring | None:
        """The keyring if ``private`` matches this slot's public key, else None."""
        mine = self.public_key()
        theirs = private.public_key()
        same = mine.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == theirs.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if not same:
            return None
        return self._open_own_box(repo_id, private)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_password_slot(
    repo_id: str,
    keyring: Keyring,
    password: bytes,
    *,
    label: str | None = None,
    kdf: KdfParams | None = None,
    slot_id: str | None = None,
    derive: Derive = KdfParams.derive,
) -> KeySlot:
    """A fresh password slot (new key pair, new salt) sealing ``keyring``;
    ``derive`` computes its wrapping key (see :data:`Derive`)."""
    if not password:
        raise StoreError("an empty password is not allowed")
    params = kdf or KdfParams()
    problem = params.problem()
    if problem is not None:
        raise StoreError(f"refusing to write a key slot: {problem}")
    slot_id = slot_id or os.urandom(16).hex()
    salt = os.urandom(16)
    private = x25519.X25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    created = _now_iso()
    fields: dict[str, Any] = {
        "format": SLOT_FORMAT,
        "version": SLOT_VERSION,
        "slot": slot_id,
        "kind": "password",
        "created": created,
        "label": label if label is not None else default_label(),
        "public_key": {"alg": "x25519", "pem": public_pem.decode()},
        "kdf": {
            "name": "argon2id",
            "salt": _b64(salt),
            "iterations": params.iterations,
            "lanes": params.lanes,
            "memory_kib": params.memory_kib,
        },
    }
    wrapping = derive(params, password, salt)
    fields["private_key"] = _b64(
        AESGCM(wrapping).encrypt(
            ZERO_NONCE, private.private_bytes_raw(), _private_ad(repo_id, fields)
        )
    )
    fields["keyring"] = _b64(_seal_box(private.public_key(), keyring, _box_ad(repo_id, fields)))
    fields = _with_mac(fields, keyring)
    return KeySlot(slot_id, "password", str(fields["label"]), created, fields)


def new_escrow_slot(
    repo_id: str, keyring: Keyring, public_pem: bytes, *, label: str | None = None
) -> KeySlot:
    """An escrow slot sealing ``keyring`` to an administrator's public key."""
    public = load_public_key(public_pem)
    slot_id = os.urandom(16).hex()
    alg = "x25519" if isinstance(public, x25519.X25519PublicKey) else "rsa-oaep-sha256"
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    created = _now_iso()
    fields: dict[str, Any] = {
        "format": SLOT_FORMAT,
        "version": SLOT_VERSION,
        "slot": slot_id,
        "kind": "escrow",
        "created": created,
        "label": label if label is not None else "escrow",
        "public_key": {"alg": alg, "pem": pem.decode()},
    }
    fields["keyring"] = _b64(_seal_box(public, keyring, _box_ad(repo_id, fields)))
    fields = _with_mac(fields, keyring)
    return KeySlot(slot_id, "escrow", str(fields["label"]), created, fields)


PrivateKey = x25519.X25519PrivateKey | rsa.RSAPrivateKey


def load_private_key(pem: bytes, password: bytes | None = None) -> PrivateKey:
    """Parse an administrator's X25519 or RSA private key. Raises StoreError."""
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"cannot read the private key: {exc}") from exc
    if isinstance(key, x25519.X25519PrivateKey | rsa.RSAPrivateKey):
        return key
    raise StoreError("escrow private keys must be X25519 or RSA")
