// Signed requests: the SDK's encoding and WebCrypto signatures against the
// golden vectors the Go verifiers (internal/reqsig) are tested with, then
// live: the run's `sigil dev --require-signed-requests` signers and driver
// verify what the SDK signs, and the coordinator refuses unsigned requests
// and keys it does not trust.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { hashMessage } from "ethers";
import {
  canonicalRequest,
  createSigilClient,
  eip191Digest,
  fromHex,
  isPermissionDenied,
  keccak256,
  RequestKey,
  SignatureStatus,
  toHex,
} from "@sigil-wallet/sdk";
import { activeWallet, fixture, randomBytes, requestKey } from "./support.js";

interface Vectors {
  keys: { name: string; algorithm: string; private_key_pem: string; public_key_text: string }[];
  vectors: {
    key: string;
    request_id: string;
    create_time_ms: number;
    wallet_id: string;
    kind: "hash" | "eip191";
    hash_hex?: string;
    message?: string;
    digest_hex: string;
    external_id: string;
    canonical_hex: string;
    signature_hex: string;
  }[];
}

const here = dirname(fileURLToPath(import.meta.url));
const golden = JSON.parse(readFileSync(join(here, "..", "..", "testdata", "request-signing-vectors.json"), "utf8")) as Vectors;

function pemToDer(pem: string): Uint8Array<ArrayBuffer> {
  const b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

describe("request signing (golden vectors shared with the Go verifiers)", () => {
  test("keccak256 and the EIP-191 digest", () => {
    assert.equal(toHex(keccak256(new Uint8Array())), "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    for (const m of ["hello", "ünïcödé ✓", "x".repeat(200), "y".repeat(70_000)]) {
      assert.equal(toHex(eip191Digest(m)), hashMessage(m), `EIP-191 digest of a ${m.length}-character message`);
    }
  });

  for (const v of golden.vectors) {
    test(`vector ${v.request_id} (${v.key}, ${v.kind})`, async () => {
      const k = golden.keys.find((x) => x.name === v.key)!;
      const key = await RequestKey.fromPem(k.private_key_pem);
      assert.equal(key.trustLine("x"), `x ${k.public_key_text}`);
      const digest = v.kind === "hash" ? fromHex(v.hash_hex!) : eip191Digest(v.message!);
      assert.equal(toHex(digest).slice(2), v.digest_hex);
      const fields = { walletId: v.wallet_id, kind: v.kind, digest, externalId: v.external_id };
      const canonical = canonicalRequest(key.algorithmName, key.publicKey, v.request_id, v.create_time_ms, fields);
      assert.equal(toHex(canonical).slice(2), v.canonical_hex);
      const signed = await key.sign(fields, v.request_id, v.create_time_ms);
      if (k.algorithm === "ed25519") {
        // Deterministic: WebCrypto's signature is the one Go made and verified.
        assert.equal(toHex(signed.signature).slice(2), v.signature_hex);
      } else {
        // ECDSA is randomised: WebCrypto verifies Go's signature, and its own
        // verifies under the public key the verifiers will use.
        const pub = await crypto.subtle.importKey("raw", new Uint8Array(key.publicKey), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
        const params = { name: "ECDSA", hash: "SHA-256" };
        assert.ok(await crypto.subtle.verify(params, pub, fromHex(v.signature_hex) as Uint8Array<ArrayBuffer>, canonical));
        assert.ok(await crypto.subtle.verify(params, pub, new Uint8Array(signed.signature), canonical));
      }
    });
  }

  test("a key that is neither Ed25519 nor P-256 is refused", async () => {
    const rsa = await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign"],
    );
    const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", rsa.privateKey));
    const pem = `-----BEGIN PRIVATE KEY-----\n${btoa(String.fromCharCode(...der))}\n-----END PRIVATE KEY-----\n`;
    await assert.rejects(RequestKey.fromPem(pem), /Ed25519 or ECDSA P-256/);
    assert.ok(pemToDer(pem).length > 0);
  });
});

describe("signed requests against the live signers", () => {
  test("signed by the SDK: verified by the signers and shown with its requester key", async (t) => {
    if (!requestKey) {
      t.skip("the server does not require signed requests (not `sigil dev --require-signed-requests`)");
      return;
    }
    const id = activeWallet(t, fixture.backends.hsm?.walletId ? "hsm" : "mpc");
    if (!id) return;
    const sigil = createSigilClient({ baseUrl: fixture.apiUrl, token: fixture.token, requestKey });
    const s = await sigil.signHash(id, randomBytes(32), { timeoutMs: 180_000 });
    assert.equal(s.status, SignatureStatus.SIGNED);
    assert.equal(s.requesterKey, "dev");
    assert.match(s.requestId, /^req_[0-9a-f]{32}$/);
  });

  test("unsigned, or signed by a key nobody trusts: refused by the coordinator", async (t) => {
    if (!requestKey) {
      t.skip("the server does not require signed requests");
      return;
    }
    const id = activeWallet(t, fixture.backends.hsm?.walletId ? "hsm" : "mpc");
    if (!id) return;
    const unsigned = createSigilClient({ baseUrl: fixture.apiUrl, token: fixture.token });
    await assert.rejects(unsigned.createSignature({ walletId: id, hash: randomBytes(32) }), (err) => {
      assert.ok(isPermissionDenied(err), String(err));
      assert.match(String(err), /requires signed requests/);
      return true;
    });
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
    const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", (pair as CryptoKeyPair).privateKey));
    const rogueKey = await RequestKey.fromPem(`-----BEGIN PRIVATE KEY-----\n${btoa(String.fromCharCode(...der))}\n-----END PRIVATE KEY-----\n`);
    const rogue = createSigilClient({ baseUrl: fixture.apiUrl, token: fixture.token, requestKey: rogueKey });
    await assert.rejects(rogue.createSignature({ walletId: id, hash: randomBytes(32) }), (err) => {
      assert.ok(isPermissionDenied(err), String(err));
      assert.match(String(err), /does not trust/);
      return true;
    });
  });
});
