// Signing a hash and an EIP-191 message with each backend, every signature
// checked by libraries independent of Sigil: @noble/curves for the raw ECDSA
// signature (compact and DER, plus public key recovery) and ethers for the
// Ethereum form (verifyMessage recovers the wallet's address).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { hashMessage, recoverAddress, Signature as EthSignature, verifyMessage } from "ethers";
import {
  ethereumSignature,
  SignatureKind,
  SignatureStatus,
  toHex,
  type Signature,
  type Wallet,
} from "@sigil-wallet/sdk";
import { activeWallet, client, randomBytes, uniq, type BackendName } from "./support.js";

const sigil = client();
// MPC signing takes seconds per signature on a small machine; be generous.
const waitMs = 180_000;

function checkRawSignature(w: Wallet, s: Signature, digest: Uint8Array): void {
  assert.equal(s.status, SignatureStatus.SIGNED);
  const r = s.result;
  assert.ok(r, "a SIGNED request has a result");
  assert.equal(r.r.length, 32);
  assert.equal(r.s.length, 32);
  assert.ok(r.recoveryId === 0 || r.recoveryId === 1);
  assert.equal(toHex(s.digest), toHex(digest));

  const compact = new Uint8Array([...r.r, ...r.s]);
  assert.ok(secp256k1.verify(compact, digest, w.publicKey, { prehash: false }), "noble verifies r,s against the public key");
  assert.ok(secp256k1.verify(r.der, digest, w.publicKey, { prehash: false, format: "der" }), "noble verifies the DER form");
  // Low S (BIP-62 / EIP-2): noble's default lowS check would reject a high S too.
  assert.ok(secp256k1.verify(compact, digest, w.publicKey, { prehash: false, lowS: true }));
  const recovered = secp256k1.Signature.fromBytes(compact).addRecoveryBit(r.recoveryId).recoverPublicKey(digest);
  assert.equal(toHex(recovered.toBytes(true)), toHex(w.publicKey), "the recovery id recovers the wallet's key");
  // A different digest must not verify (the check above is not vacuous).
  const other = new Uint8Array(digest);
  other[0] ^= 1;
  assert.equal(secp256k1.verify(compact, other, w.publicKey, { prehash: false }), false);

  assert.equal(r.ethereum.length, 65);
  assert.equal(toHex(r.ethereum.slice(0, 64)), toHex(compact));
  assert.equal(r.ethereum[64], 27 + r.recoveryId);
}

for (const backend of ["hsm", "mpc"] as BackendName[]) {
  describe(`signing with an ${backend.toUpperCase()} wallet`, () => {
    test("a 32-byte hash, verified with @noble/curves and ethers' recoverAddress", async (t) => {
      const id = activeWallet(t, backend);
      if (!id) return;
      const w = await sigil.getWallet(id);
      const hash = randomBytes(32);
      const statuses: SignatureStatus[] = [];
      const s = await sigil.signHash(id, toHex(hash), {
        timeoutMs: waitMs,
        onProgress: ({ signature }) => statuses.push(signature.status),
      });
      assert.equal(s.kind, SignatureKind.HASH);
      assert.equal(s.walletId, id);
      assert.equal(toHex(s.hash), toHex(hash));
      checkRawSignature(w, s, hash);
      assert.equal(recoverAddress(toHex(hash), ethereumSignature(s)), w.addresses?.ethereum);
      assert.equal(statuses.at(-1), SignatureStatus.SIGNED);
      const again = await sigil.getSignature(s.id);
      assert.equal(again.id, s.id);
      assert.equal(again.status, SignatureStatus.SIGNED);
      assert.equal(toHex(again.result?.ethereum ?? new Uint8Array()), ethereumSignature(s));
    });

    test("an EIP-191 message, verified with ethers' verifyMessage recovering the wallet's address", async (t) => {
      const id = activeWallet(t, backend);
      if (!id) return;
      const w = await sigil.getWallet(id);
      const message = `Sign in to Sigil tests\nnonce: ${uniq()}\nünïcödé ✓`;
      const s = await sigil.signMessage(id, message, { timeoutMs: waitMs });
      assert.equal(s.kind, SignatureKind.EIP191_MESSAGE);
      assert.equal(s.message, message);
      assert.equal(toHex(s.digest), hashMessage(message), "digest is the EIP-191 hash");
      checkRawSignature(w, s, s.digest);
      const sig = ethereumSignature(s);
      assert.equal(verifyMessage(message, sig), w.addresses?.ethereum);
      assert.equal(EthSignature.from(sig).v, 27 + (s.result?.recoveryId ?? 0));
      assert.notEqual(verifyMessage(`${message}!`, sig), w.addresses?.ethereum);
    });

    test("an external id makes a signature request idempotent; listSignatures pages through the wallet's requests", async (t) => {
      const id = activeWallet(t, backend);
      if (!id) return;
      const externalId = `sdk-sig-${uniq()}`;
      const hash = randomBytes(32);
      // createSignature returns at once; the same external id gives the same request.
      const first = await sigil.createSignature({ walletId: id, hash, externalId });
      const again = await sigil.createSignature({ walletId: id, hash, externalId });
      assert.equal(again.id, first.id);
      const done = await sigil.waitForSignature(first.id, { timeoutMs: waitMs });
      assert.equal(done.status, SignatureStatus.SIGNED);
      await assert.rejects(sigil.createSignature({ walletId: id, hash: randomBytes(32), externalId }), (err: Error) => /already/i.test(err.message));

      const mine = await sigil.listSignatures({ walletId: id, pageSize: 1000 }).toArray();
      assert.ok(mine.length >= 3, `${mine.length} signatures listed for ${id}`);
      assert.ok(mine.every((s) => s.walletId === id));
      assert.ok(mine.some((s) => s.id === first.id));
      const paged: string[] = [];
      for await (const s of sigil.listSignatures({ walletId: id, pageSize: 1 })) paged.push(s.id);
      assert.deepEqual(paged, mine.map((s) => s.id));
      const everyone = await sigil.listSignatures().toArray();
      assert.ok(everyone.length >= mine.length);
    });
  });
}
