// Key schemes beyond ECDSA through the MPC backend: an Ed25519 wallet signs
// message bytes that @noble/curves' ed25519 verifies (RFC 8032), a Schnorr
// wallet signs a hash that @noble/curves' BIP-340 verifier accepts for the
// Taproot output key, and requests of the wrong form are refused naming
// the field. FROST key generations take milliseconds, so each test makes
// its own wallet.
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { Code, ConnectError, KeyScheme, SignatureKind, toHex } from "@sigil-wallet/sdk";
import { client, fixture, randomBytes, uniq } from "./support.js";

const sigil = client();
const waitMs = 60_000;

function needMPC(t: TestContext): boolean {
  if (fixture.activeBackends.includes("mpc")) return true;
  if (fixture.ci) throw new Error("under CI=true the MPC backend must be available for the key scheme tests");
  t.skip("the MPC backend is not available here");
  return false;
}

// BIP-341 output key of an x-only internal key with no script tree,
// computed with noble: Q = lift_x(P) + H_TapTweak(P)·G.
function taprootOutputKey(internal: Uint8Array): Uint8Array {
  const tag = sha256(new TextEncoder().encode("TapTweak"));
  const t = sha256(new Uint8Array([...tag, ...tag, ...internal]));
  const P = secp256k1.Point.fromBytes(new Uint8Array([2, ...internal]));
  const Q = P.add(secp256k1.Point.BASE.multiply(BigInt("0x" + toHex(t).slice(2))));
  return Q.toBytes(true).slice(1);
}

describe("key schemes", () => {
  test("Ed25519: message bytes signed in RFC 8032 form", async (t) => {
    if (!needMPC(t)) return;
    const w = await sigil.createWalletAndWait({ name: `ed25519 ${uniq()}`, backend: "mpc", keyScheme: KeyScheme.ED25519, timeoutMs: waitMs });
    assert.equal(w.keyScheme, KeyScheme.ED25519);
    assert.equal(w.publicKey.length, 32);
    assert.match(w.addresses?.solana ?? "", /^[1-9A-HJ-NP-Za-km-z]{32,44}$/);
    const msg = randomBytes(200);
    const s = await sigil.signRawMessage(w.id, msg, { timeoutMs: waitMs });
    assert.equal(s.kind, SignatureKind.RAW_MESSAGE);
    assert.equal(s.result?.ed25519.length, 64);
    assert.ok(ed25519.verify(s.result!.ed25519, msg, w.publicKey), "noble's ed25519 verifies the signature");
    assert.ok(!ed25519.verify(s.result!.ed25519, randomBytes(200), w.publicKey));
    await assert.rejects(sigil.signHash(w.id, randomBytes(32)), (e: unknown) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.code, Code.InvalidArgument);
      assert.match(e.rawMessage, /^hash: /);
      return true;
    });
  });

  test("Schnorr: a BIP-340 signature by the Taproot output key", async (t) => {
    if (!needMPC(t)) return;
    const w = await sigil.createWalletAndWait({ name: `taproot ${uniq()}`, backend: "mpc", keyScheme: KeyScheme.SCHNORR_SECP256K1, timeoutMs: waitMs });
    assert.equal(w.publicKey.length, 32);
    assert.match(w.addresses?.bitcoinP2tr ?? "", /^bc1p[02-9ac-hj-np-z]{58}$/);
    const hash = randomBytes(32);
    const s = await sigil.signHash(w.id, hash, { timeoutMs: waitMs });
    assert.equal(s.result?.schnorr.length, 64);
    assert.equal(s.result?.r.length, 0, "no ECDSA encodings for a Schnorr wallet");
    assert.ok(schnorr.verify(s.result!.schnorr, hash, taprootOutputKey(w.publicKey)), "noble's BIP-340 verifies it for the output key");

    const child = await sigil.createWallet({ parentWalletId: w.id, derivationPath: "m/0/1" });
    assert.equal(child.parentWalletId, w.id);
    assert.equal(child.derivationPath, "m/0/1");
    const kids = [];
    for await (const k of sigil.listWallets({ parentWalletId: w.id })) kids.push(k.id);
    assert.deepEqual(kids, [child.id]);
    const cs = await sigil.signHash(child.id, hash, { timeoutMs: waitMs });
    assert.ok(schnorr.verify(cs.result!.schnorr, hash, taprootOutputKey(child.publicKey)));
  });
});
