// Package audit is Coffer's tamper-evident, fail-closed local audit log.
//
// The server builds a [Record] for every request, replaces sensitive fields
// by keyed hashes itself (Record.HMACs), and hands the record to
// [Log.Append], which returns only once the record is durable. A request
// whose record cannot be made durable must be refused: Append reports that
// with an error wrapping [ErrUnavailable], and the Log keeps refusing until a
// write and fsync succeed again.
//
// # File format
//
// The log is a directory of files named audit-<first seq, 20 digits>.jsonl,
// so that they sort by seq; the newest file is the active one. Each file
// holds JSON Lines: one record per line, each line ending in '\n'. Seq
// numbers start at 1 and continue across files; they are never reset.
//
// # Hash chain
//
// Every record carries prev, the hash of the record before it ("" only for
// seq 1), and hash, its own hash:
//
//	hash_n = hex(SHA-256(canonical(record_n with Hash = "")))
//
// canonical(r) is encoding/json's Marshal of the Record struct: fields in
// declaration order (seq first, prev and hash last), omitempty fields left
// out, map keys sorted, strings escaped as encoding/json escapes them
// (including <, > and &), times in RFC 3339 with nanoseconds, UTC. A line on
// disk is exactly canonical(r) with the hash value filled in, so the hash is
// also the SHA-256 of the line's bytes with the hash value emptied; verifiers
// check both (the hash over the bytes, and that the line re-encodes to
// itself). A golden file in testdata pins the encoding so that a change in
// encoding/json is caught before it ships.
//
// # Checkpoints
//
// Every Options.CheckpointEvery records, before a file is rotated out, and
// on Close, the Log appends a checkpoint record. Its Checkpoint field holds
// an Ed25519 signature over
//
//	"coffer-audit-checkpoint-v1\n" + decimal(up_to) + "\n" + chain_hash
//
// where up_to is the seq of the record before the checkpoint and chain_hash
// that record's hash (equal to the checkpoint's own prev). The checkpoint is
// itself a link of the chain, covered by the next checkpoint. A rotated file
// therefore always ends with a checkpoint.
//
// # What verification detects
//
// [Verify] recomputes every hash and checks prev links, seq continuity and
// checkpoint signatures, and reports the first bad record by file and line.
// Editing, deleting, duplicating or reordering a record, splicing records
// from another log, a torn last line, a missing middle file, and a forged or
// foreign checkpoint signature are all detected. An attacker who rewrites
// the chain (recomputing hashes) can only do so up to the next checkpoint,
// whose signature then fails.
//
// Removing whole records from the end of the log cannot be detected from the
// log alone: a prefix of a valid chain is a valid chain. Verify narrows this
// two ways. Report.Unsigned counts the records after the last checkpoint: a
// cleanly closed log ends with a checkpoint, so a non-zero count means the
// writer crashed, is still running, or the tail was cut.
// VerifyOptions.RequireSignedTail turns that into a Problem. And
// VerifyOptions.ExpectLastSeq, taken from somewhere the attacker could not
// rewrite (a remote sink, the server's metrics, an earlier verification),
// detects any cut at all. A cut made exactly after a checkpoint, with no
// outside knowledge of the last seq, is undetectable.
//
// # Crash recovery
//
// Appends are acknowledged only after the lines holding them, each ending in
// '\n', are fsynced, so a crash can leave at most an incomplete last line
// that nobody was told is durable. [Open] refuses such a torn tail with
// [ErrTornTail] unless Options.RepairTornTail is set; then it moves the
// fragment to a side file (<file>.torn-<offset>), truncates it away, and
// says so in the Reason of the start record it writes next, so the repair
// is itself on the signed record. A last complete line whose hash does not
// check is never repaired: Open fails with [ErrCorrupt].
package audit
