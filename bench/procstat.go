package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux platform Go supports).
const clockTicks = 100

// ProcSample is one reading of a process's resident memory and consumed CPU.
type ProcSample struct {
	PID     int     `json:"pid"`
	RSSKiB  int64   `json:"rss_kib"`
	CPUSecs float64 `json:"cpu_s"` // user + system since start
	Threads int     `json:"threads"`
}

// ReadProc reads VmRSS and Threads from /proc/<pid>/status and utime +
// stime from /proc/<pid>/stat.
func ReadProc(pid int) (ProcSample, error) {
	s := ProcSample{PID: pid}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read process %d status: %w", pid, err)
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			f := strings.Fields(string(line[6:]))
			if len(f) > 0 {
				s.RSSKiB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		case bytes.HasPrefix(line, []byte("Threads:")):
			s.Threads, _ = strconv.Atoi(strings.TrimSpace(string(line[8:])))
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read process %d stat: %w", pid, err)
	}
	// The command name may contain spaces; fields restart after its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("process %d stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("process %d stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("process %d stat: bad utime/stime", pid)
	}
	s.CPUSecs = float64(ut+st) / clockTicks
	return s, nil
}

// ReadProcs reads every pid and sums RSS and CPU.
func ReadProcs(pids []int) (rssKiB int64, cpuSecs float64, err error) {
	for _, p := range pids {
		s, e := ReadProc(p)
		if e != nil {
			return 0, 0, e
		}
		rssKiB += s.RSSKiB
		cpuSecs += s.CPUSecs
	}
	return rssKiB, cpuSecs, nil
}

// SelfCPU returns the CPU time (user + system) this process has used.
func SelfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return d.Seconds()
}
