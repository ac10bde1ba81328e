package audit

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// appendBody is encodeBody's fast path: it appends exactly the bytes
// encoding/json writes for r between the seq value and the prev field, for
// the records the server appends on every request, without reflection. It
// reports false for what it does not handle (checkpoints, times outside
// years 0-9999), and encodeBody then falls back to encoding/json.
// TestAppendBodyMatchesJSON holds the two to the same bytes.
func appendBody(b []byte, r *Record) ([]byte, bool) {
	if r.Checkpoint != nil || r.Time.Year() < 0 || r.Time.Year() > 9999 {
		return b, false
	}
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","type":`...)
	b = appendString(b, r.Type)
	b = appendField(b, "request_id", r.RequestID)
	b = appendField(b, "op", r.Op)
	b = appendField(b, "path", r.Path)
	b = appendInt(b, "version", int64(r.Version))
	b = appendField(b, "stage", r.Stage)
	if id := r.Identity; id != nil {
		b = append(b, `,"identity":{`...)
		n := len(b)
		b = appendField(b, "name", id.Name)
		b = appendField(b, "id", id.ID)
		b = appendField(b, "method", id.Method)
		b = appendField(b, "accessor", id.Accessor)
		if len(id.Policies) > 0 {
			b = append(b, `,"policies":[`...)
			for i, p := range id.Policies {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, p)
			}
			b = append(b, ']')
		}
		if id.BreakGlass {
			b = append(b, `,"break_glass":true`...)
		}
		if id.MFA {
			b = append(b, `,"mfa":true`...)
		}
		if len(b) > n {
			b = append(b[:n], b[n+1:]...) // the first field's comma
		}
		b = append(b, '}')
	}
	b = appendField(b, "source", r.Source)
	b = appendField(b, "user_agent", r.UserAgent)
	b = appendField(b, "decision", r.Decision)
	b = appendField(b, "policy", r.Policy)
	b = appendField(b, "rule", r.Rule)
	b = appendField(b, "reason", r.Reason)
	b = appendInt(b, "status", int64(r.Status))
	b = appendField(b, "error", r.Error)
	b = appendInt(b, "latency_us", r.LatencyUS)
	if len(r.HMACs) > 0 {
		keys := make([]string, 0, len(r.HMACs))
		for k := range r.HMACs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"hmac":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.HMACs[k])
		}
		b = append(b, '}')
	}
	return append(b, ','), true
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendInt(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendString appends s as encoding/json quotes it. Printable ASCII other
// than the characters it escapes is copied; anything else goes through
// encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
