package store

import "strings"

// scopedExternalID is how an external id is stored: after its owner and a
// "/", so the column's UNIQUE constraint holds per owner and one caller's
// external ids never collide with, or reveal, another's. Neither owners
// (token ids, "tenant:<name>") nor external ids (letters, digits, "._:-")
// contain "/". An empty owner (rows from before owners) stores the bare id.
func scopedExternalID(owner, externalID string) string {
	if externalID == "" || owner == "" {
		return externalID
	}
	return owner + "/" + externalID
}

// unscopedExternalID is the external id the caller gave, from its stored
// form.
func unscopedExternalID(owner, stored string) string {
	if owner == "" {
		return stored
	}
	return strings.TrimPrefix(stored, owner+"/")
}
