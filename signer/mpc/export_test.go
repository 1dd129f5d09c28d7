package mpc

// DecodeMessage exposes the incoming-decode path to the black-box fuzz test.
var DecodeMessage = decodeMessage
