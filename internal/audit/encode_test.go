package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// jsonBody is encodeBody's reference path: encoding/json on the record.
func jsonBody(t *rapid.T, r *Record) []byte {
	c := *r
	c.Seq, c.Prev, c.Hash = 0, "", ""
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return b[len(bodyPrefix) : len(b)-len(bodySuffix)]
}

func genString(t *rapid.T, label string) string {
	return rapid.OneOf(
		rapid.Just(""),
		rapid.StringMatching(`[a-zA-Z0-9/_.:-]{1,20}`),
		rapid.String(), // any runes, including quotes, controls, <>&, U+2028
		rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) }), // invalid UTF-8
	).Draw(t, label)
}

// TestAppendBodyMatchesJSON: the fast encoder writes exactly what
// encoding/json writes, for any record it accepts, so the hash chain and
// verifiers (which re-encode with encoding/json) are unaffected.
func TestAppendBodyMatchesJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := &Record{
			Time:      time.Unix(rapid.Int64Range(-1e10, 4e11).Draw(t, "sec"), rapid.Int64Range(0, 999999999).Draw(t, "ns")).UTC(),
			Type:      genString(t, "type"),
			RequestID: genString(t, "rid"),
			Op:        genString(t, "op"),
			Path:      genString(t, "path"),
			Version:   rapid.IntRange(-2, 1<<40).Draw(t, "version"),
			Stage:     genString(t, "stage"),
			Source:    genString(t, "source"),
			UserAgent: genString(t, "ua"),
			Decision:  genString(t, "decision"),
			Policy:    genString(t, "policy"),
			Rule:      genString(t, "rule"),
			Reason:    genString(t, "reason"),
			Status:    rapid.IntRange(0, 599).Draw(t, "status"),
			Error:     genString(t, "error"),
			LatencyUS: rapid.Int64().Draw(t, "latency"),
		}
		if rapid.Bool().Draw(t, "identity") {
			r.Identity = &Identity{Name: genString(t, "name"), ID: genString(t, "id"), Method: genString(t, "method"),
				Accessor: genString(t, "accessor"), BreakGlass: rapid.Bool().Draw(t, "bg"), MFA: rapid.Bool().Draw(t, "mfa")}
			r.Identity.Policies = rapid.SliceOfN(rapid.StringMatching(`[a-z<&"]{0,8}`), 0, 3).Draw(t, "policies")
		}
		if rapid.Bool().Draw(t, "hmacs") {
			r.HMACs = rapid.MapOfN(rapid.StringMatching(`[a-z_<]{1,8}`), rapid.String(), 0, 4).Draw(t, "hmacmap")
		}
		got, ok := appendBody(nil, r)
		if !ok {
			return
		}
		if want := jsonBody(t, r); !bytes.Equal(got, want) {
			t.Fatalf("fast encoding differs:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkEncodeBody(b *testing.B) {
	r := &Record{Time: time.Now().UTC(), Type: TypeRequest, RequestID: "0d0559095605815e", Op: "secret.read",
		Path: "prod/payments/db", Version: 3, Stage: "current", Source: "10.0.0.7", UserAgent: "coffer-go/1.0",
		Identity: &Identity{Name: "approle/payments", ID: "ent_123", Method: "approle", Accessor: "acc_abcdef", Policies: []string{"payments"}},
		Decision: "allow", Policy: "payments", Rule: "prod/payments/*", Status: 200, LatencyUS: 87}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeBody(r); err != nil {
			b.Fatal(err)
		}
	}
}
