package driver

import (
	"os"
	"strconv"
	"strings"
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

// machineCPU is the CPU time every process on this machine has used (busy
// time in /proc/stat), or 0 where there is no /proc/stat. With PostgreSQL
// on the same machine, the server's CPU is in it, as is whatever else
// runs.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / userHZ
}

// userHZ is the unit of /proc/stat's counters on Linux.
const userHZ = 100

// cpuMeter reads the process's and the machine's CPU at a start.
type cpuMeter struct{ process, machine time.Duration }

func startCPU() cpuMeter { return cpuMeter{processCPU(), machineCPU()} }

// per returns the process's and the machine's CPU since the start per
// event, in milliseconds; the machine's is 0 where it cannot be read.
func (m cpuMeter) per(n int) (process, machine float64) {
	process = float64(processCPU()-m.process) / float64(time.Millisecond) / float64(n)
	if m.machine > 0 {
		machine = float64(machineCPU()-m.machine) / float64(time.Millisecond) / float64(n)
	}
	return process, machine
}
