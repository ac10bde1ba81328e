// Package agent is the Coffer agent, run beside applications by
// `coffer agent --config FILE`. It
//
//   - logs in with an auth method (approle, jwt or token), keeps the token in
//     memory, renews it at two thirds of its life and logs in again when a
//     renewal fails, the token nears its maximum lifetime or the server
//     refuses it (authenticator);
//   - serves GET /v1/secrets/{name} to local applications, without a token,
//     from a bounded cache answering exactly the server's bytes (handler,
//     cache); when the server is unreachable it answers the last good value,
//     flagged stale, for up to max_stale (F1);
//   - follows the server's event stream and drops or refetches what changed
//     (follower);
//   - renders text/template files from secrets and reloads applications
//     (renderer);
//   - exports its own Prometheus metrics, among them the cache hit ratio (M5)
//     and the age of stale values served.
//
// Security boundary: the cache listener answers anyone who can reach it
// with whatever the agent's token may read. It listens on a unix socket
// created 0600 (or 0660) and on loopback TCP only, and refuses what only
// web browsers send (an Origin header; on TCP, a Host that is not a
// loopback name), against DNS rebinding; see docs/agent.md.
package agent
