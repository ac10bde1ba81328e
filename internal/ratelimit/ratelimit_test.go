package ratelimit

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := New([]Rule{
		{Prefix: "", IdentityRate: 10, IdentityBurst: 2, SourceRate: 100, SourceBurst: 100},
		{Prefix: "prod/", IdentityRate: 1, IdentityBurst: 1},
	}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	// The longest prefix wins: prod/ allows one request per second.
	if err := l.AllowIdentity("prod/db", "alice"); err != nil {
		t.Fatal(err)
	}
	err = l.AllowIdentity("prod/db", "alice")
	var lim *Limited
	if !errors.As(err, &lim) || lim.RetryAfter != time.Second || !errors.Is(err, ErrLimited) {
		t.Fatalf("second prod read = %v, want limited for 1s", err)
	}
	// Other identities and other prefixes have their own buckets.
	if err := l.AllowIdentity("prod/db", "bob"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := l.AllowIdentity("dev/x", "alice"); err != nil {
			t.Fatalf("dev read %d: %v", i, err)
		}
	}
	if err := l.AllowIdentity("dev/x", "alice"); err == nil {
		t.Fatal("burst of 2 allowed a third request")
	}
	now = now.Add(time.Second) // refills
	if err := l.AllowIdentity("prod/db", "alice"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if err := l.AllowSource("prod/db", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatalf("prod rule has no source limit; the default's does not apply: %v", err)
	}
}

func TestNoRulesNoLimiter(t *testing.T) {
	l, err := New([]Rule{{Prefix: "x/"}}, nil)
	if err != nil || l != nil {
		t.Fatalf("New(no rates) = %v, %v, want nil", l, err)
	}
	if l.AllowIdentity("x/y", "a") != nil || l.AllowSource("x/y", netip.MustParseAddr("10.0.0.2")) != nil {
		t.Fatal("nil limiter limited")
	}
	if _, err := New([]Rule{{IdentityRate: -1}}, nil); err == nil {
		t.Fatal("negative rate accepted")
	}
}

// TestSourceBucketsPerIPv6Slash64: an IPv6 host cannot take a fresh bucket
// per request by rotating the addresses of its /64; IPv4 (also mapped) is
// per address.
func TestSourceBucketsPerIPv6Slash64(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := New([]Rule{{Prefix: "", SourceRate: 1, SourceBurst: 1}}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AllowSource("a", netip.MustParseAddr("2001:db8:1:2::1")); err != nil {
		t.Fatal(err)
	}
	if err := l.AllowSource("a", netip.MustParseAddr("2001:db8:1:2:ffff::9")); err == nil {
		t.Fatal("another address of the same /64 got a fresh bucket")
	}
	if err := l.AllowSource("a", netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	if err := l.AllowSource("a", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := l.AllowSource("a", netip.MustParseAddr("::ffff:10.0.0.1")); err == nil {
		t.Fatal("an IPv4-mapped address got a bucket of its own")
	}
	if err := l.AllowSource("a", netip.MustParseAddr("10.0.0.2")); err != nil {
		t.Fatalf("another IPv4 address: %v", err)
	}
}

// TestFloodKeepsThrottling: when every bucket is in use, a flood of new
// source addresses is made to wait; it never pushes out the bucket of an
// identity that is being throttled.
func TestFloodKeepsThrottling(t *testing.T) {
	defer func(n int) { maxBuckets = n }(maxBuckets)
	maxBuckets = 4
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := New([]Rule{{Prefix: "", IdentityRate: 1, IdentityBurst: 1, SourceRate: 1, SourceBurst: 1}}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AllowIdentity("a", "mallory"); err != nil {
		t.Fatal(err)
	}
	if l.AllowIdentity("a", "mallory") == nil {
		t.Fatal("burst 1 allowed two")
	}
	refused := 0
	for i := 0; i < 100; i++ {
		if l.AllowSource("a", netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})) != nil {
			refused++
		}
	}
	if refused < 90 {
		t.Fatalf("a flood of 100 new sources into 4 buckets: %d refused", refused)
	}
	if l.AllowIdentity("a", "mallory") == nil {
		t.Fatal("the flood reset a throttled identity")
	}
	// Once buckets have refilled, new sources get room again.
	now = now.Add(2 * time.Second)
	if err := l.AllowSource("a", netip.MustParseAddr("10.9.9.9")); err != nil {
		t.Fatalf("a new source after the buckets refilled: %v", err)
	}
}
