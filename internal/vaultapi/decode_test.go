package vaultapi

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestIntList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{`[1,2]`, []int{1, 2}, true},
		{`["1","2"]`, []int{1, 2}, true}, // what the official client's DeleteVersions sends
		{`"1, 2,3"`, []int{1, 2, 3}, true},
		{`4`, []int{4}, true},
		{`null`, nil, true},
		{`[0]`, nil, false},
		{`[-1]`, nil, false},
		{`[1.5]`, nil, false},
		{`[{}]`, nil, false},
		{`"a"`, nil, false},
		{`[99999999999]`, nil, false},
		{`{}`, nil, false},
	} {
		var l intList
		err := json.Unmarshal([]byte(tc.in), &l)
		if (err == nil) != tc.ok || (tc.ok && !slices.Equal(l, tc.want)) {
			t.Errorf("intList(%s) = %v, %v; want %v, ok %v", tc.in, l, err, tc.want, tc.ok)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{`3600`, time.Hour, true},
		{`"3600"`, time.Hour, true},
		{`"90m"`, 90 * time.Minute, true},
		{`"0s"`, 0, true}, // what the official client's PutMetadata sends
		{`""`, 0, true},
		{`"-1h"`, 0, false},
		{`-5`, 0, false},
		{`"soon"`, 0, false},
		{`true`, 0, false},
		{`99999999999999999`, 0, false},
	} {
		var d duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err == nil) != tc.ok || (tc.ok && d.d != tc.want) {
			t.Errorf("duration(%s) = %v, %v; want %v, ok %v", tc.in, d.d, err, tc.want, tc.ok)
		}
	}
}

func TestFlexInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{`3`, 3, true}, {`"3"`, 3, true}, {`-1`, -1, true}, {`null`, 0, true},
		{`1.5`, 0, false}, {`"x"`, 0, false}, {`[]`, 0, false}, {`4294967296`, 0, false},
	} {
		var f flexInt
		err := json.Unmarshal([]byte(tc.in), &f)
		if (err == nil) != tc.ok || (tc.ok && f.n != tc.want) {
			t.Errorf("flexInt(%s) = %v, %v; want %v, ok %v", tc.in, f.n, err, tc.want, tc.ok)
		}
	}
}

func TestLastNameUnder(t *testing.T) {
	for _, folder := range []string{"a", "team/one", string(make([]byte, 509))} {
		n := lastNameUnder(folder)
		if len(n) > 512 || n[:len(folder)+1] != folder+"/" {
			t.Errorf("lastNameUnder(%d bytes) = %d bytes", len(folder), len(n))
		}
	}
}

// FuzzDecoders feeds untrusted JSON to the flexible field types: they must
// never panic, and whatever they accept is within bounds.
func FuzzDecoders(f *testing.F) {
	for _, s := range []string{
		`[1,2]`, `["1","2"]`, `"1,2"`, `3`, `null`, `"90m"`, `"0s"`, `""`,
		`[` + string(make([]byte, 0)) + `]`, // empty list
		`"-9223372036854775808"`,            // overflow bait
		`"1e9"`, `1e400`, `"\u0000"`, `[[1]]`, `{"a":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l intList
		if json.Unmarshal(b, &l) == nil {
			if len(l) > maxVersionList {
				t.Fatalf("intList accepted %d versions", len(l))
			}
			for _, n := range l {
				if n < 1 {
					t.Fatalf("intList accepted %d", n)
				}
			}
		}
		var d duration
		if json.Unmarshal(b, &d) == nil && (d.d < 0 || d.d > maxDuration) {
			t.Fatalf("duration accepted %v", d.d)
		}
		var fi flexInt
		json.Unmarshal(b, &fi)
		var sl stringList
		json.Unmarshal(b, &sl)
	})
}

// FuzzMergePatch checks RFC 7386 properties on untrusted documents: the
// result of an object patch is an object, and applying the same patch
// twice changes nothing more (merge patches are idempotent).
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":2}}`), []byte(`{"b":{"c":null,"d":[1]},"e":"x"}`))
	f.Add([]byte(`{}`), []byte(`{"a":{"b":{"c":null}}}`))
	f.Add([]byte(`[1]`), []byte(`{"a":null}`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		var tv, pv any
		if unmarshalNumber(target, &tv) != nil || unmarshalNumber(patch, &pv) != nil {
			return
		}
		if _, ok := pv.(map[string]any); !ok {
			return
		}
		once, err := json.Marshal(mergePatch(tv, pv))
		if err != nil {
			t.Fatal(err)
		}
		var ov any
		if err := unmarshalNumber(once, &ov); err != nil {
			t.Fatal(err)
		}
		if _, ok := ov.(map[string]any); !ok {
			t.Fatalf("object patch gave %s", once)
		}
		var pv2 any
		unmarshalNumber(patch, &pv2)
		twice, _ := json.Marshal(mergePatch(ov, pv2))
		if string(once) != string(twice) {
			t.Fatalf("not idempotent: %s then %s", once, twice)
		}
	})
}
