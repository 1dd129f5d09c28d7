// Request keys: an application signs every CreateSignature end to end, and
// the signers and HSM drivers that trust its public key verify it
// themselves, so a compromised coordinator cannot forge a request.
//
// This is the TypeScript copy of Sigil's canonical request encoding
// (version 1); the verifiers' copy is Go's internal/reqsig, and the golden
// vectors in sdk/testdata/request-signing-vectors.json keep all copies byte
// for byte the same. Signing uses WebCrypto only (Ed25519 and ECDSA P-256,
// in Node 20+ and browsers), so the SDK needs no extra dependency.
import { Code, ConnectError } from "@connectrpc/connect";
import { RequestKeyAlgorithm } from "./gen/sigil/wallet/v1/wallet_pb.js";

const DOMAIN = "sigil/signature-request/v1\u0000";
const te = new TextEncoder();

/** What a request signature covers, as the signers check it. */
export interface RequestFields {
  walletId: string;
  /** `"hash"`, `"eip191"` or `"raw-message"`. */
  kind: "hash" | "eip191" | "raw-message";
  /** The 32-byte digest the wallet signs; for a raw message (Ed25519 signs the message itself), its SHA-256. */
  digest: Uint8Array;
  externalId: string;
}

/** The request signature sent with CreateSignature. */
export interface SignedRequestFields {
  requestId: string;
  createTimeMs: number;
  algorithm: RequestKeyAlgorithm;
  publicKey: Uint8Array;
  signature: Uint8Array;
}

/**
 * The canonical bytes a request key signs: the domain, then each field as a
 * 4-byte big-endian length and its bytes: algorithm, public key, request id,
 * create time (8-byte big-endian Unix milliseconds), wallet id, kind, digest,
 * external id.
 */
export function canonicalRequest(
  algorithm: string,
  publicKey: Uint8Array,
  requestId: string,
  createTimeMs: number,
  f: RequestFields,
): Uint8Array<ArrayBuffer> {
  const time = new Uint8Array(8);
  new DataView(time.buffer).setBigUint64(0, BigInt(createTimeMs));
  const fields = [te.encode(algorithm), publicKey, te.encode(requestId), time, te.encode(f.walletId), te.encode(f.kind), f.digest, te.encode(f.externalId)];
  const parts: Uint8Array[] = [te.encode(DOMAIN)];
  for (const field of fields) {
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, field.length);
    parts.push(n, field);
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * An application's request key, loaded from the PKCS #8 PEM file that
 * `sigil request-key init` writes (Ed25519 or ECDSA P-256). Pass it as the
 * `requestKey` option of `createSigilClient` and every signature request is
 * signed with it.
 */
export class RequestKey {
  private constructor(
    private readonly key: CryptoKey,
    /** The key's algorithm. */
    readonly algorithm: RequestKeyAlgorithm,
    /** The raw public key: 32 bytes (Ed25519) or the 65-byte uncompressed point (P-256). */
    readonly publicKey: Uint8Array,
  ) {}

  /** Reads a PKCS #8 "PRIVATE KEY" PEM (the file `sigil request-key init` writes). */
  static async fromPem(pem: string): Promise<RequestKey> {
    const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
    if (!m) throw new ConnectError('sigil: a request key must be a PEM "PRIVATE KEY" (PKCS #8) block', Code.InvalidArgument);
    const der = base64Decode(m[1]!.replace(/\s+/g, ""));
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) throw new ConnectError("sigil: WebCrypto (crypto.subtle) is not available here: request keys need it", Code.FailedPrecondition);
    const isEd25519 = includes(der, [0x06, 0x03, 0x2b, 0x65, 0x70]); // OID 1.3.101.112
    const isP256 = includes(der, [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]); // OID prime256v1
    let params: EcKeyImportParams | Algorithm;
    let algorithm: RequestKeyAlgorithm;
    if (isEd25519) {
      params = { name: "Ed25519" };
      algorithm = RequestKeyAlgorithm.ED25519;
    } else if (isP256) {
      params = { name: "ECDSA", namedCurve: "P-256" };
      algorithm = RequestKeyAlgorithm.ECDSA_P256_SHA256;
    } else {
      throw new ConnectError("sigil: request keys are Ed25519 or ECDSA P-256", Code.InvalidArgument);
    }
    // Imported extractable once, to read the public key from its JWK, then
    // again without extraction for signing.
    const open = await subtle.importKey("pkcs8", der, params, true, ["sign"]);
    const jwk = await subtle.exportKey("jwk", open);
    const x = base64UrlDecode(jwk.x ?? "");
    const publicKey = isEd25519 ? x : concat([new Uint8Array([4]), x, base64UrlDecode(jwk.y ?? "")]);
    const key = await subtle.importKey("pkcs8", der, params, false, ["sign"]);
    return new RequestKey(key, algorithm, publicKey);
  }

  /** The canonical algorithm name, as in a trusted-keys file. */
  get algorithmName(): string {
    return this.algorithm === RequestKeyAlgorithm.ED25519 ? "ed25519" : "ecdsa-p256-sha256";
  }

  /** The line that trusts this key in a `--trusted-request-keys` file. */
  trustLine(name: string): string {
    return `${name} ${this.algorithmName}:${base64Encode(this.publicKey)}`;
  }

  /**
   * Signs a request's fields. `requestId` must be fresh per request (1 to 128
   * of `A-Za-z0-9._:-`); a random one is made when it is omitted.
   */
  async sign(f: RequestFields, requestId?: string, nowMs: number = Date.now()): Promise<SignedRequestFields> {
    const id = requestId ?? `req_${hex(globalThis.crypto.getRandomValues(new Uint8Array(16)))}`;
    const ms = Math.floor(nowMs);
    const msg = canonicalRequest(this.algorithmName, this.publicKey, id, ms, f);
    const params = this.algorithm === RequestKeyAlgorithm.ED25519 ? { name: "Ed25519" } : { name: "ECDSA", hash: "SHA-256" };
    const signature = new Uint8Array(await globalThis.crypto.subtle.sign(params, this.key, msg));
    return { requestId: id, createTimeMs: ms, algorithm: this.algorithm, publicKey: this.publicKey, signature };
  }
}

/** keccak256("\x19Ethereum Signed Message:\n" + len + message): the digest of an EIP-191 message. */
export function eip191Digest(message: string): Uint8Array {
  const body = te.encode(message);
  return keccak256(concat([te.encode(`\x19Ethereum Signed Message:\n${body.length}`), body]));
}

// Keccak-256 (the pre-standard SHA-3 Ethereum uses), on 64-bit lanes as
// BigInt: short and dependency-free; messages are at most 64 KiB.
const RC = [
  0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n, 0x000000000000808bn, 0x0000000080000001n,
  0x8000000080008081n, 0x8000000000008009n, 0x000000000000008an, 0x0000000000000088n, 0x0000000080008009n, 0x000000008000000an,
  0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n, 0x8000000000008003n, 0x8000000000008002n, 0x8000000000000080n,
  0x000000000000800an, 0x800000008000000an, 0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
];
const ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];
const MASK = (1n << 64n) - 1n;
const rotl = (v: bigint, n: number): bigint => (n === 0 ? v : ((v << BigInt(n)) | (v >> BigInt(64 - n))) & MASK);

function keccakF(s: bigint[]): void {
  for (let round = 0; round < 24; round++) {
    const c = [0, 1, 2, 3, 4].map((x) => s[x]! ^ s[x + 5]! ^ s[x + 10]! ^ s[x + 15]! ^ s[x + 20]!);
    for (let x = 0; x < 5; x++) {
      const d = c[(x + 4) % 5]! ^ rotl(c[(x + 1) % 5]!, 1);
      for (let y = 0; y < 25; y += 5) s[x + y] = s[x + y]! ^ d;
    }
    const b = new Array<bigint>(25);
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(s[x + 5 * y]!, ROT[x + 5 * y]!);
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 25; y += 5) s[x + y] = b[x + y]! ^ (~b[((x + 1) % 5) + y]! & MASK & b[((x + 2) % 5) + y]!);
    }
    s[0] = s[0]! ^ RC[round]!;
  }
}

/** Keccak-256 of data. */
export function keccak256(data: Uint8Array): Uint8Array {
  const rate = 136;
  const padded = new Uint8Array(Math.floor(data.length / rate) * rate + rate);
  padded.set(data);
  padded[data.length] = (padded[data.length] ?? 0) ^ 0x01;
  padded[padded.length - 1] = padded[padded.length - 1]! ^ 0x80;
  const s = new Array<bigint>(25).fill(0n);
  const view = new DataView(padded.buffer);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) s[i] = s[i]! ^ view.getBigUint64(off + 8 * i, true);
    keccakF(s);
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) ov.setBigUint64(8 * i, s[i]!, true);
  return out;
}

function includes(hay: Uint8Array, needle: number[]): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function base64Decode(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function base64UrlDecode(s: string): Uint8Array {
  const b = s.replace(/-/g, "+").replace(/_/g, "/");
  return base64Decode(b + "=".repeat((4 - (b.length % 4)) % 4));
}

function base64Encode(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b));
}
