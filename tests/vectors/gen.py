#!/usr/bin/env python3
"""Independent test vectors for the Urna ballot protocol (docs/PROTOCOL.md).

Written against the contract text alone, with pyca/cryptography (OpenSSL) for the
signatures: nothing here shares code with the Rust implementation. The output,
tests/vectors/ballots.json, is committed; CI reads the JSON and never runs Python.

    pip install cryptography
    python3 tests/vectors/gen.py > tests/vectors/ballots.json

Deterministic: fixed keys; Ed25519 is deterministic and the P-256 nonce comes from
OpenSSL (RFC 6979 is not available), so re-running changes only the P-256 signatures.
"""
import base64
import hashlib
import json
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ELECTION = "demo-2026"
OPENS_AT_MS = 1_767_225_600_000   # 2026-01-01T00:00:00Z
CLOSES_AT_MS = 1_798_761_600_000  # 2027-01-01T00:00:00Z
NOW_MS = 1_780_000_000_000        # inside the window
L = 2**252 + 27742317777372353535851937790883648493  # Ed25519 group order


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def signed_message(election, alg, voter, seq, payload):
    digest = hashlib.sha256(payload).digest()
    return (f"urna/ballot/v1\nelection {election}\nvoter {alg} {voter}\n"
            f"seq {seq}\npayload {b64u(digest)}\n").encode()


class Ed:
    alg = "ed25519"

    def __init__(self, seed: bytes):
        self.sk = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        self.pub = self.sk.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, msg):
        return self.sk.sign(msg)


class P256:
    alg = "p256"

    def __init__(self, scalar: int):
        self.sk = ec.derive_private_key(scalar, ec.SECP256R1())
        self.pub = self.sk.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def sign(self, msg):
        der = self.sk.sign(msg, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def body(election, alg, voter, seq, payload, sig):
    # Contract field order, no whitespace: the form clients are expected to send.
    return json.dumps({"election": election, "alg": alg, "voter": voter, "seq": seq,
                       "payload": payload, "sig": sig}, separators=(",", ":"))


def entry_bytes(key, election, seq, payload, sig, received_ms):
    """The logged entry, from the layout table in docs/PROTOCOL.md."""
    alg_code = 1 if key.alg == "ed25519" else 2
    return (b"B" + struct.pack(">Q", received_ms)
            + bytes([len(election)]) + election.encode()
            + bytes([alg_code]) + key.pub
            + struct.pack(">Q", seq)
            + struct.pack(">H", len(payload)) + payload + sig)


def main():
    voters = [Ed(bytes([i]) * 32) for i in range(1, 4)] + \
             [P256(0x1234567890ABCDEF * (i + 3)) for i in range(3)]
    strangers = {"ed25519": Ed(bytes([0x77]) * 32), "p256": P256(0x7777777777)}
    roll = "# Urna test roll (tests/vectors/gen.py)\n\n" + \
        "".join(f"{v.alg} {b64u(v.pub)}\n" for v in voters)

    cases = []
    for n, v in enumerate(voters):
        seq = n + 1
        payload = f"encrypted ballot #{n} \u2713".encode() + bytes(range(n * 7))
        voter = b64u(v.pub)
        msg = signed_message(ELECTION, v.alg, voter, seq, payload)
        sig = v.sign(msg)
        good = dict(election=ELECTION, alg=v.alg, voter=voter, seq=seq,
                    payload=b64u(payload), sig=b64u(sig))

        def case(name, expect, **changes):
            f = dict(good)
            f.update(changes)
            cases.append({"name": f"{v.alg}#{n} {name}", "expect": expect,
                          "body": body(**f)})

        cases.append({
            "name": f"{v.alg}#{n} valid", "expect": "ok", "body": body(**good),
            "signed_message": msg.decode(),
            "received_ms": NOW_MS,
            "entry_hex": entry_bytes(v, ELECTION, seq, payload, sig, NOW_MS).hex(),
        })
        # One field changed at a time: the order of checks decides the code.
        case("other election", "wrong_election", election="other-2026")
        case("bad election charset", "malformed", election="Demo 2026")
        case("alg swapped", "malformed", alg="p256" if v.alg == "ed25519" else "ed25519")
        case("unknown alg", "malformed", alg="rsa")
        case("voter not on roll", "not_eligible", voter=b64u(strangers[v.alg].pub))
        other = voters[(n + 1) % 3 + (0 if v.alg == "ed25519" else 3)]
        case("another voter's key", "bad_signature", voter=b64u(other.pub))
        case("voter padded", "malformed", voter=voter + "=")
        std = base64.b64encode(v.pub).rstrip(b"=").decode()
        if std != voter:  # only keys whose encoding uses '-' or '_' differ
            case("voter std alphabet", "malformed", voter=std)
        case("seq changed", "bad_signature", seq=seq + 1)
        case("seq zero", "malformed", seq=0)
        case("seq too big", "malformed", seq=2**53)
        case("payload changed", "bad_signature", payload=b64u(payload + b"!"))
        case("payload not base64url", "malformed", payload="@@@@")
        flipped = bytearray(sig)
        flipped[10] ^= 0x01
        case("sig bit flipped", "bad_signature", sig=b64u(bytes(flipped)))
        case("sig truncated", "malformed", sig=b64u(sig[:63]))
        case("sig zero", "bad_signature", sig=b64u(bytes(64)))
        if v.alg == "ed25519":
            s = int.from_bytes(sig[32:], "little")
            high_s = sig[:32] + (s + L).to_bytes(32, "little")
            case("non-canonical S (S + l)", "bad_signature", sig=b64u(high_s))
        else:
            r = int.from_bytes(sig[:32], "big")
            s = int.from_bytes(sig[32:], "big")
            n_p256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
            # ECDSA malleability: (r, n - s) is also valid for the same message. The
            # contract accepts it (WebCrypto does not normalise s), and it is a different
            # ballot for the idempotency rules.
            case("high-s twin", "ok", sig=b64u(sig[:32] + (n_p256 - s).to_bytes(32, "big")))
            case("s >= n", "bad_signature", sig=b64u(sig[:32] + (s + n_p256).to_bytes(32, "big"))
                 if s + n_p256 < 2**256 else b64u(sig[:32] + n_p256.to_bytes(32, "big")))
            case("r zero", "bad_signature", sig=b64u(bytes(32) + sig[32:]))
        base = body(**good)
        cases.append({"name": f"{v.alg}#{n} unknown field", "expect": "malformed",
                      "body": base[:-1] + ',"extra":1}'})
        cases.append({"name": f"{v.alg}#{n} duplicate field", "expect": "malformed",
                      "body": base[:-1] + f',"seq":{seq}}}'})
        cases.append({"name": f"{v.alg}#{n} trailing bytes", "expect": "malformed",
                      "body": base + "x"})
        cases.append({"name": f"{v.alg}#{n} missing sig", "expect": "malformed",
                      "body": base[:base.index(',"sig"')] + "}"})

    # RFC 8032 §7.1 test vectors 1-3, checked here by OpenSSL before being written.
    rfc8032 = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]
    rfc = []
    for sk, pk, msg, sig in rfc8032:
        k = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sk))
        assert k.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() == pk
        k.public_key().verify(bytes.fromhex(sig), bytes.fromhex(msg))
        assert k.sign(bytes.fromhex(msg)).hex() == sig
        rfc.append({"secret": sk, "public": pk, "message": msg, "signature": sig})

    # The manifest (entry 0), from the layout table in docs/PROTOCOL.md, with a real
    # signed-note verifier key: name+hex(key id)+base64(0x01 || key), key id = first 4
    # bytes of SHA-256(name || "\n" || 0x01 || key).
    log_name = "urna.example/demo-2026"
    log_pub = Ed(bytes([0x4c]) * 32).pub
    key_id = hashlib.sha256(log_name.encode() + b"\n\x01" + log_pub).digest()[:4]
    vkey_b64 = base64.b64encode(b"\x01" + log_pub).decode()
    vkey = f"{log_name}+{key_id.hex()}+{vkey_b64}"
    roll_hash = hashlib.sha256(roll.encode()).digest()
    manifest = (b"M" + bytes([len(ELECTION)]) + ELECTION.encode() + roll_hash
                + bytes([1])  # revote last
                + bytes([0b11]) + struct.pack(">QQ", OPENS_AT_MS, CLOSES_AT_MS)
                + struct.pack(">H", len(vkey)) + vkey.encode())

    out = {
        "generator": "tests/vectors/gen.py (pyca/cryptography)",
        "election": {"id": ELECTION, "revote": "last",
                     "opens_at_ms": OPENS_AT_MS, "closes_at_ms": CLOSES_AT_MS},
        "now_ms": NOW_MS,
        "roll": roll,
        "roll_sha256": hashlib.sha256(roll.encode()).hexdigest(),
        "cases": cases,
        "rfc8032": rfc,
        "manifest": {"log_verifier_key": vkey, "hex": manifest.hex()},
    }
    print(json.dumps(out, indent=1, ensure_ascii=True))


if __name__ == "__main__":
    main()
