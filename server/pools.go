package server

// SetPoolSizes changes the key pool and the per-wallet presignature pool
// targets at run time (0 stops filling; what is pooled is still used).
func (s *Server) SetPoolSizes(keys, presignatures int) { s.mpc.SetPoolSizes(keys, presignatures) }
