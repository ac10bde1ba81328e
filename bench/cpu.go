//go:build linux

package main

import (
	"context"
	"os"
	"time"
)

// usage is the CPU time used during a measured window.
type usage struct {
	serverUser, serverSys time.Duration // the server process
	load                  time.Duration // this process, the load generator
	hostBusy              float64       // fraction of the machine's CPU time that was busy
	otherBusy             float64       // fraction used by neither the server nor this process
}

// sample is a reading of the CPU counters at one moment.
type sample struct {
	server, load        procTimes
	hostBusy, hostTotal int64 // clock ticks, all CPUs
}

func takeSample(server *proc) (s sample, err error) {
	if s.server, err = cpuTimes(server.pid()); err != nil {
		return s, server.failure(err)
	}
	if s.load, err = cpuTimes(os.Getpid()); err != nil {
		return s, err
	}
	s.hostBusy, s.hostTotal, err = hostCPU()
	return s, err
}

// since returns the usage between an earlier sample s0 and s.
func (s sample) since(s0 sample) usage {
	u := usage{
		serverUser: s.server.user - s0.server.user,
		serverSys:  s.server.sys - s0.server.sys,
		load:       s.load.total() - s0.load.total(),
	}
	busy, total := ticks(s.hostBusy-s0.hostBusy), ticks(s.hostTotal-s0.hostTotal)
	u.hostBusy = div(float64(busy), float64(total))
	// Kernel work for these processes outside their own accounting (loopback
	// softirqs, journal commits) also lands here, so this is rarely zero.
	u.otherBusy = max(0, div(float64(busy-u.serverUser-u.serverSys-u.load), float64(total)))
	return u
}

// measureCPU waits for the window w and returns the CPU time used during it.
func measureCPU(ctx context.Context, w window, server *proc) (usage, error) {
	if err := sleepUntil(ctx, w.start); err != nil {
		return usage{}, err
	}
	s0, err := takeSample(server)
	if err != nil {
		return usage{}, err
	}
	if err := sleepUntil(ctx, w.end); err != nil {
		return usage{}, err
	}
	s1, err := takeSample(server)
	if err != nil {
		return usage{}, err
	}
	return s1.since(s0), nil
}
