package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Record types. Records the server appends are TypeRequest unless it names
// another type; TypeStart and TypeCheckpoint are written only by the Log.
const (
	TypeRequest    = "request"
	TypeStart      = "start"      // first record written by each Open
	TypeCheckpoint = "checkpoint" // signed checkpoint, written by the Log
)

// MaxRecordBytes bounds one encoded record line. Append refuses larger
// records; readers report longer lines as corrupt instead of buffering them.
const MaxRecordBytes = 1 << 20

// Record is one line of the audit log. Fields are never secret: the caller
// replaces sensitive values by keyed hashes in HMACs before appending.
//
// The field order is part of the hash format (see the package comment):
// never reorder, rename or retype a field without a format version change.
type Record struct {
	Seq        uint64            `json:"seq"` // 1, 2, ... across rotated files, never reset
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"` // TypeRequest, TypeStart, TypeCheckpoint, ...
	RequestID  string            `json:"request_id,omitempty"`
	Op         string            `json:"op,omitempty"`   // e.g. "secret.read"
	Path       string            `json:"path,omitempty"` // secret name or sys/... path (names are not secret)
	Version    int               `json:"version,omitempty"`
	Stage      string            `json:"stage,omitempty"`
	Identity   *Identity         `json:"identity,omitempty"`
	Source     string            `json:"source,omitempty"`
	UserAgent  string            `json:"user_agent,omitempty"`
	Decision   string            `json:"decision,omitempty"` // "allow", "deny", "unauthenticated", "" (public)
	Policy     string            `json:"policy,omitempty"`   // deciding policy
	Rule       string            `json:"rule,omitempty"`     // deciding rule
	Reason     string            `json:"reason,omitempty"`
	Status     int               `json:"status,omitempty"`
	Error      string            `json:"error,omitempty"` // error code, never a message carrying data
	LatencyUS  int64             `json:"latency_us,omitempty"`
	HMACs      map[string]string `json:"hmac,omitempty"` // field -> "hmac-sha256:<hex>", computed by the caller
	Checkpoint *Checkpoint       `json:"checkpoint,omitempty"`
	Prev       string            `json:"prev"` // hash of the previous record ("" only for seq 1)
	Hash       string            `json:"hash"` // hash of this record, see the package comment
}

// Identity is the caller a request was made as.
type Identity struct {
	Name       string   `json:"name,omitempty"`
	ID         string   `json:"id,omitempty"`
	Method     string   `json:"method,omitempty"`
	Accessor   string   `json:"accessor,omitempty"`
	Policies   []string `json:"policies,omitempty"`
	BreakGlass bool     `json:"break_glass,omitempty"`
	MFA        bool     `json:"mfa,omitempty"`
}

// Checkpoint is the signed part of a checkpoint record.
type Checkpoint struct {
	UpTo      uint64 `json:"up_to"`      // seq of the record before the checkpoint
	ChainHash string `json:"chain_hash"` // hash of record UpTo ("" if UpTo is 0)
	KeyID     string `json:"key_id"`     // PublicKeyID of the signing key
	Signature string `json:"sig"`        // hex Ed25519 signature of checkpointMessage(UpTo, ChainHash)
}

// PublicKeyID returns the short id checkpoints name their key by: the first
// 16 hex digits of the SHA-256 of the public key.
func PublicKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// checkpointMessage is the byte string a checkpoint signs.
func checkpointMessage(upTo uint64, chainHash string) []byte {
	b := append([]byte(nil), "coffer-audit-checkpoint-v1\n"...)
	b = strconv.AppendUint(b, upTo, 10)
	b = append(b, '\n')
	return append(b, chainHash...)
}

// The canonical encoding of a record with Seq 0 and empty Prev and Hash is
// bodyPrefix + body + bodySuffix. The Log marshals the body once, on the
// appending goroutine, and the writer splices in seq and prev: the result is
// byte for byte what json.Marshal would produce, which decodeLine checks on
// every read.
var (
	bodyPrefix = []byte(`{"seq":0`)
	bodySuffix = []byte(`"prev":"","hash":""}`)
)

// hashTailLen is the length of `"hash":"<64 hex>"}` ending every line.
const hashTailLen = len(`"hash":"`) + sha256.Size*2 + len(`"}`)

// encodeBody returns the canonical encoding of r between the seq value and
// the prev field: `,"time":...,`. It does not modify r.
//
// Strings that are not valid UTF-8 are stored with U+FFFD in place of each
// invalid byte. encoding/json writes those as the escape \ufffd, but a
// decoded U+FFFD is written back raw, so such a first encoding is not a
// fixed point; encodeBody re-encodes it once to reach the canonical form
// that verifiers reproduce.
func encodeBody(r *Record) ([]byte, error) { return encodeBodyTo(make([]byte, 0, 512), r) }

// encodeBodyTo is encodeBody appending to dst (whose contents it replaces
// on the slow path).
func encodeBodyTo(dst []byte, r *Record) ([]byte, error) {
	if b, ok := appendBody(dst[:0], r); ok && !bytes.Contains(b, []byte(`\ufffd`)) {
		return b, nil
	}
	c := *r
	c.Seq, c.Prev, c.Hash = 0, "", ""
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte(`\ufffd`)) {
		var d Record
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, err
		}
		if b, err = json.Marshal(&d); err != nil {
			return nil, err
		}
	}
	if !bytes.HasPrefix(b, bodyPrefix) || !bytes.HasSuffix(b, bodySuffix) {
		return nil, errors.New("unexpected record encoding")
	}
	return b[len(bodyPrefix) : len(b)-len(bodySuffix)], nil
}

// lineLen is the length of the line appendLine writes for body after a
// record whose hash is prevLen bytes long.
func lineLen(seq uint64, body []byte, prevLen int) int {
	digits := 1
	for v := seq; v >= 10; v /= 10 {
		digits++
	}
	return len(`{"seq":`) + digits + len(body) + len(`"prev":"`) + prevLen + len(`","hash":"`) + sha256.Size*2 + len("\"}\n")
}

// chain is the head of a hash chain.
type chain struct {
	seq             uint64 // seq of the last record, 0 before the first
	hash            string // hash of the last record
	lastType        string // type of the last record
	sinceCheckpoint int    // records since the last checkpoint (approximate after Open)
}

// appendLine appends to dst the line of the record with the given body (from
// encodeBody) as the record after c's head, and advances c to it.
func (c *chain) appendLine(dst, body []byte, typ string) []byte {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, c.seq+1, 10)
	dst = append(dst, body...)
	dst = append(dst, `"prev":"`...)
	dst = append(dst, c.hash...)
	dst = append(dst, `","hash":""}`...)
	sum := sha256.Sum256(dst[start:])
	dst = dst[:len(dst)-len(`"}`)]
	hashAt := len(dst)
	dst = hex.AppendEncode(dst, sum[:])
	c.hash = string(dst[hashAt:])
	dst = append(dst, "\"}\n"...)
	c.seq++
	c.lastType = typ
	if typ == TypeCheckpoint {
		c.sinceCheckpoint = 0
	} else {
		c.sinceCheckpoint++
	}
	return dst
}

// appendCheckpoint appends a checkpoint record signed with key over c's head.
func (c *chain) appendCheckpoint(dst []byte, now time.Time, key ed25519.PrivateKey, keyID string) []byte {
	sig := ed25519.Sign(key, checkpointMessage(c.seq, c.hash))
	rec := Record{
		Time: now,
		Type: TypeCheckpoint,
		Checkpoint: &Checkpoint{
			UpTo:      c.seq,
			ChainHash: c.hash,
			KeyID:     keyID,
			Signature: hex.EncodeToString(sig),
		},
	}
	body, err := encodeBody(&rec)
	if err != nil {
		// Only an unencodable time can fail, and now comes from the clock.
		panic("audit: encode checkpoint: " + err.Error())
	}
	return c.appendLine(dst, body, TypeCheckpoint)
}

// decodeLine parses one line (without its '\n') and checks it on its own:
// the hash must be the SHA-256 of the line with the hash value emptied, and
// the line must be the canonical encoding of the record it parses to. It
// returns the record, or a description of the first problem.
func decodeLine(line []byte) (*Record, string) {
	var rec Record
	if err := json.Unmarshal(line, &rec); err != nil {
		return nil, "malformed record: " + err.Error()
	}
	n := len(line)
	if n < hashTailLen || !bytes.HasPrefix(line[n-hashTailLen:], []byte(`"hash":"`)) || !bytes.HasSuffix(line, []byte(`"}`)) {
		return &rec, "record does not end with its hash field"
	}
	want := line[n-hashTailLen+len(`"hash":"`) : n-len(`"}`)]
	h := sha256.New()
	h.Write(line[:n-hashTailLen+len(`"hash":"`)])
	h.Write([]byte(`"}`))
	var sum [sha256.Size]byte
	got := hex.AppendEncode(make([]byte, 0, sha256.Size*2), h.Sum(sum[:0]))
	if !bytes.Equal(got, want) || rec.Hash != string(want) {
		return &rec, "hash mismatch: the record was modified"
	}
	rec.Hash = ""
	canon, err := json.Marshal(&rec)
	rec.Hash = string(want)
	if err != nil || !bytes.Equal(canon[:len(canon)-len(`"}`)], line[:n-hashTailLen+len(`"hash":"`)]) {
		return &rec, "record is not in canonical form"
	}
	return &rec, ""
}

// checkCheckpoint checks the checkpoint record rec against the trusted keys
// (by key id). It returns a description of the problem, or "".
func checkCheckpoint(rec *Record, keys map[string]ed25519.PublicKey) string {
	cp := rec.Checkpoint
	switch {
	case cp == nil:
		return "checkpoint record without a checkpoint"
	case rec.Type != TypeCheckpoint:
		return "checkpoint in a record of type " + strconv.Quote(rec.Type)
	case cp.UpTo != rec.Seq-1:
		return "checkpoint up_to " + strconv.FormatUint(cp.UpTo, 10) + " is not the record before it"
	case cp.ChainHash != rec.Prev:
		return "checkpoint chain_hash is not the hash of the record before it"
	}
	pub, ok := keys[cp.KeyID]
	if !ok {
		return "checkpoint signed by untrusted key " + strconv.Quote(cp.KeyID)
	}
	sig, err := hex.DecodeString(cp.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, checkpointMessage(cp.UpTo, cp.ChainHash), sig) {
		return "checkpoint signature does not verify"
	}
	return ""
}
