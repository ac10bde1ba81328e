// Package vaultapi serves the subset of HashiCorp Vault's HTTP API that
// applications use to read and write secrets, so that existing Vault and
// OpenBao clients (the official Go client, the vault CLI, agents and
// libraries in other languages) work against Coffer unchanged.
//
// The handler serves Vault's paths (/v1/...) and is mounted by the server
// under /vault/, so clients set VAULT_ADDR=http://host:port/vault: the
// official client joins the address path with /v1/... .
//
// # Endpoints
//
//   - KV version 2 on one mount (Config.Mount, default "secret"):
//     data/{path} (GET, POST/PUT, PATCH, DELETE), delete/{path},
//     undelete/{path}, destroy/{path}, metadata/{path} (GET, POST/PUT,
//     PATCH, DELETE, LIST and GET ?list=true).
//   - auth/token/lookup-self, renew-self, create, create-orphan.
//   - auth/approle/login.
//   - sys/health, sys/seal-status, and sys/internal/ui/mounts/{path}, which
//     the vault CLI asks before "vault kv ..." to learn the KV version.
//
// Everything else answers 404 {"errors": [...]}.
//
// # How Vault's KV model maps onto Coffer's
//
// Names. The Vault path below the mount is the Coffer secret name, checked
// with secret.ValidateName. Policies are Coffer policies and name the
// secret ("prod/db"), not Vault's "secret/data/prod/db"; every request is
// authorized exactly as the native API would authorize the same operation.
//
// Values. A Vault secret is a JSON object; a write stores it as a Coffer
// JSON value (type json), one Coffer version per Vault version, numbered the
// same. Reading a Coffer value that is not a JSON object through this API
// returns it wrapped in an object: text as {"value": "<text>"}, a JSON value
// that is not an object as {"value": <json>}, and binary as
// {"value_base64": "<standard base64>"}. A Vault write always stores JSON,
// so a text secret rewritten by a Vault client holds {"value": ...} as JSON
// from that version on.
//
// Current version. Vault's current_version, and the version a read without
// ?version returns, is the version holding Coffer's "current" stage. Coffer's
// check-and-set compares options.cas with the latest version; the two are
// the same unless a rotation has staged a pending version, in which case a
// cas write fails rather than overwriting it.
//
// Check-and-set failures answer 400 with Vault's own message "check-and-set
// parameter did not match the current version", as Vault does. (The
// official client retries every 412 as a replication-consistency signal, so
// a 412 here would be retried twice and then reported late.)
//
// Deletion. Vault deletes versions one by one; Coffer's soft delete is per
// secret, with a recovery window. So:
//
//   - DELETE data/{path} soft-deletes the whole secret with Coffer's default
//     recovery window (30 days): every version becomes unreadable, not only
//     the latest as in Vault. Reads then answer 404 with the version
//     metadata and its deletion_time, as Vault does for a deleted version.
//   - POST delete/{path} {"versions": [...]} does the same when the list
//     includes the current (or latest) version. A list of older versions
//     alone is refused with 400: Coffer cannot delete one old version; use
//     destroy/ to erase old versions' values.
//   - POST undelete/{path} restores the whole secret, whatever versions are
//     listed (at least one must be). Undeleting a secret that is not deleted
//     is a no-op, as in Vault.
//   - POST destroy/{path} {"versions": [...]} erases those versions' values
//     (Coffer's destroy); versions that do not exist are ignored, as in Vault.
//   - DELETE metadata/{path} purges the secret and every version at once.
//   - Writing to a soft-deleted secret is refused with 400: undelete it first.
//   - A Coffer secret past its expires_at reads like a deleted version: 404
//     with deletion_time set to the expiry.
//
// Metadata. custom_metadata is Coffer's tags (at most 50, values up to 256
// bytes). max_versions maps to Coffer's max_versions; 0 resets it to the
// default (10). cas_required true and a non-zero delete_version_after are
// refused with 400: Coffer has neither. Vault creates metadata for a path
// that has no data yet; Coffer creates a secret with its first value, so
// writing metadata for a missing secret answers 404.
//
// Lists. LIST metadata/{path} returns the immediate children of path, with
// folders ending in "/", built from Coffer's name list (including soft-deleted
// secrets, whose metadata Vault would still list). Names the caller may not
// list never appear, and a folder appears only if it holds a name the caller
// may list. An empty result answers 404, as in Vault.
//
// Tokens. lookup-self and renew-self answer with Vault's shapes, including
// the caller's own token as "id" / "client_token", as Vault does. create
// grants only policies the caller holds (root may grant any), like the
// native API; no_parent (and create-orphan) needs update on
// auth/token/create-orphan. Custom token ids, batch tokens, entity aliases
// and token roles are refused with 400.
//
// # Errors
//
// Errors are {"errors": ["message"]} with Vault's statuses: 400 for a bad
// request, 403 "permission denied" for a missing or invalid token and for a
// denied capability (Vault does not tell them apart), 404 with an empty list
// for a missing secret, 405 for an unsupported method, 413 for a body over
// 1 MiB, 503 "Vault is sealed" while sealed, 503 "audit log unavailable;
// request refused" when the request's audit record cannot be kept, and 500
// "internal error" for anything unexpected (the detail goes to the server
// log under the request id).
//
// # Audit
//
// Every request, the 404, 405 and bad-path refusals included, has a durable
// audit record before it is answered. A change (an authenticated write, or
// an AppRole login) first checks that the log can be written and writes an
// intent record, so a login during an audit outage spends no secret_id use
// and mints no token. A login's outcome record names the new token's
// identity and holds the role_id only as an HMAC. During an outage only
// sys/health without a token keeps answering, since the outage is what it
// must be able to report.
//
// Request bodies are decoded strictly: unknown fields are refused with a 400
// naming the field, where Vault would ignore them with a warning, so that a
// setting Coffer does not implement is never silently dropped.
package vaultapi
