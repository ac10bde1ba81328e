//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks returns the kernel's clock ticks per second, the unit of the CPU
// times in /proc/PID/stat: `getconf CLK_TCK`, or 100 (the value on every
// common Linux platform) if getconf is missing.
var clockTicks = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && perr == nil && n > 0 {
		return n
	}
	return 100
})

// procTimes is the CPU time a process has used so far, all threads.
type procTimes struct{ user, sys time.Duration }

func (t procTimes) total() time.Duration { return t.user + t.sys }

// cpuTimes reads process pid's CPU times from /proc/PID/stat. Their
// resolution is one clock tick (10 ms at 100 ticks/s), which is why each step
// should run for seconds.
func cpuTimes(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	// Field 2, the command name, is in parentheses and may hold spaces, so
	// split after the last ')': the rest starts at field 3 (state), which
	// puts utime (field 14) at index 11 and stime (field 15) at index 12.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return procTimes{user: ticks(utime), sys: ticks(stime)}, nil
}

// ticks converts clock ticks to a duration.
func ticks(n int64) time.Duration {
	return time.Duration(n) * time.Second / time.Duration(clockTicks())
}

// memory is a process's resident set, from /proc/PID/status.
type memory struct {
	RSS  int64 `json:"rss_bytes"`  // VmRSS: all resident pages
	Anon int64 `json:"anon_bytes"` // RssAnon: heap, stacks
	File int64 `json:"file_bytes"` // RssFile: mapped files (binary, bolt's mmap)
}

// readMemory returns the resident set sizes of process pid.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	fields := map[string]*int64{"VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	for line := range strings.Lines(string(b)) {
		name, v, _ := strings.Cut(line, "\t")
		if dst := fields[name]; dst != nil {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return memory{}, fmt.Errorf("/proc/%d/status: bad %s %q", pid, name, v)
			}
			*dst = kb << 10
		}
	}
	if m.RSS == 0 {
		return memory{}, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, nil
}

// hostCPU returns the machine's busy and total CPU time so far, in clock
// ticks summed over all CPUs, from the first line of /proc/stat. Idle and
// iowait count as not busy.
func hostCPU() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// cpu user nice system idle iowait irq softirq steal ...; guest time is
	// already included in user and nice, so stop before it.
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %v", v, err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}
