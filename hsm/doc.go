// Package hsm is Sigil's PKCS#11 layer: it keeps secp256k1 wallet keys outside
// the HSM, wrapped under one AES-256 master key that never leaves the token.
//
// The HSM stores no per-wallet state. Key generation creates the key pair as
// session objects, wraps the private key with CKM_AES_KEY_WRAP_PAD and destroys
// both objects; signing unwraps the blob into a session object, signs with
// CKM_ECDSA and destroys it again. Because every HSM of a deployment holds the
// same master key, any driver can sign for any wallet, and losing a driver
// loses nothing.
//
// The package talks to the module through github.com/miekg/pkcs11 because
// crypto11 can neither create secp256k1 keys nor wrap and unwrap. A module is
// loaded and initialised once per process (see module.go) so that several
// handles, for example one per token, can share it without one handle's
// Close finalising the library under the others.
//
// Beside the master key each token holds an attestation key (attestation.go):
// ECDSA P-256, generated on the token and never extractable, with which the
// driver has the HSM vouch for each new wallet key so that the coordinator
// can refuse keys no HSM made.
//
// Operations are safe for concurrent use: each borrows a logged-in session
// from a fixed pool (see pool.go) and returns it, replacing sessions that the
// module reports as closed or invalid.
package hsm
