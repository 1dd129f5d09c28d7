package mpc

// DecodeMessage exposes the incoming-decode path to the black-box fuzz test.
var DecodeMessage = decodeMessage

// DecodeEd exposes the FROST-Ed25519 decode path to the fuzz test.
var DecodeEd = decodeEd
