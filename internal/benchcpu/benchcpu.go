// Package benchcpu adds the process's CPU time per operation to a
// benchmark's results: on machines whose cores are shared, CPU per
// operation is steadier than wall time, and it counts what wall time hides
// (other goroutines' work, system time in fsync and network calls).
package benchcpu

import "testing"

// Report measures from now until the benchmark's cleanup and reports the
// process's user+system CPU time, all threads, per b.N as "cpu-ns/op".
// Call it after setup (and b.ResetTimer). Where the platform cannot tell
// process CPU time it reports nothing.
func Report(b *testing.B) {
	start, ok := processCPU()
	if !ok {
		return
	}
	b.Cleanup(func() {
		if end, ok := processCPU(); ok && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	})
}
