package driver

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process has used. On a
// shared machine throughput swings with what else runs; CPU per signature
// does not, so the benchmark reports both. With PostgreSQL, the database
// server's own CPU is not in it.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPer returns the CPU used since start per event, in milliseconds.
func cpuPer(start time.Duration, n int) float64 {
	return float64(processCPU()-start) / float64(time.Millisecond) / float64(n)
}
