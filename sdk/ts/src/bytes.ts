import { Code, ConnectError } from "@connectrpc/connect";
import type { Signature } from "./gen/sigil/wallet/v1/wallet_pb.js";

/**
 * Encodes bytes as lowercase hex with a `0x` prefix, the form Ethereum tools
 * expect.
 *
 * @example `toHex(sig.result!.ethereum)` gives `"0x…"` (132 characters).
 */
export function toHex(bytes: Uint8Array): string {
  let s = "0x";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * Decodes a hex string, with or without `0x`, into bytes. Throws a
 * ConnectError with `Code.InvalidArgument` for anything that is not an even
 * number of hex digits.
 */
export function fromHex(hex: string): Uint8Array {
  const h = hex.startsWith("0x") || hex.startsWith("0X") ? hex.slice(2) : hex;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) {
    throw new ConnectError(`sigil: not a hex string: ${JSON.stringify(hex.slice(0, 80))}`, Code.InvalidArgument);
  }
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Turns a hash given as bytes or hex into the 32 bytes the API takes, or
 * throws a ConnectError with `Code.InvalidArgument` before any network call.
 */
export function hashBytes(hash: Uint8Array | string): Uint8Array {
  const b = typeof hash === "string" ? fromHex(hash) : hash;
  if (b.length !== 32) {
    throw new ConnectError(`sigil: a hash to sign must be 32 bytes, got ${b.length}`, Code.InvalidArgument);
  }
  return b;
}

/** Message bytes to sign as they are: bytes, or hex (`0x` optional). */
export function messageBytes(message: Uint8Array | string): Uint8Array {
  return typeof message === "string" ? fromHex(message) : message;
}

/**
 * Returns the 65-byte Ethereum signature (r || s || v, v = 27 + recovery id)
 * of a SIGNED request as `0x` hex, as returned by `personal_sign` and accepted
 * by `ecrecover` and ethers' `verifyMessage`. Throws if the request is not
 * signed yet.
 */
export function ethereumSignature(signature: Signature): string {
  const r = signature.result;
  if (!r || r.ethereum.length !== 65) {
    throw new ConnectError(`sigil: signature ${signature.id} has no result yet`, Code.FailedPrecondition);
  }
  return toHex(r.ethereum);
}
