// Package wire is what both coordinator ports (the API port and the node
// port) do the same way at the edge of every RPC: decode JSON strictly
// (unknown fields and enum names are refused), enforce the protovalidate
// rules of the contracts, and turn every error into a Connect error that
// carries a machine-readable reason (sigil.wallet.v1.ErrorDetail). Domain
// errors are mapped to codes and reasons here and nowhere else.
package wire
