// Package cluster coordinates Coffer nodes that share one PostgreSQL
// database: it elects the one leader that runs background jobs, and keeps
// a registry of nodes (address, seal state, leader) for status pages.
//
// The leader holds a session-level PostgreSQL advisory lock on a dedicated
// connection. PostgreSQL releases the lock when that session ends, which is
// at once when the leader's process dies, and within a few seconds when its
// machine or network does (the session is set to time out when idle, and
// the leader pings it every Interval). A node that cannot ping its session
// steps down before PostgreSQL could hand the lock to another node; the
// jobs it runs are also written to be safe if two leaders briefly overlap.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LockKey is the advisory lock key of the leader ("coffer-L" in ASCII).
const LockKey int64 = 0x636f666665722d4c

// Config configures a Node. Zero values mean defaults where stated.
type Config struct {
	Pool       *pgxpool.Pool   // for the registry
	ConnConfig *pgx.ConnConfig // for the dedicated session that holds the lock
	// NodeID names this node in the registry; it should stay the same
	// across restarts. Required.
	NodeID string
	// APIAddr is the URL other nodes and operators reach this node at.
	APIAddr string
	Version string
	// Sealed reports the node's seal state; nil: unsealed. A sealed node
	// cannot run the leader's jobs, so it does not campaign, and a leader
	// that seals steps down (releasing the lock) within SealPoll.
	Sealed func() bool
	// SealPoll is how often Run checks Sealed between campaigns, so that a
	// seal or unseal is acted on without waiting for Interval; 0 means
	// 250ms, or Interval if that is shorter.
	SealPoll time.Duration
	// OnChange is called, on the Node's goroutine, when this node gains
	// (true) or loses (false) leadership.
	OnChange func(leader bool)
	// Interval is how often the node pings its session, tries for the lock
	// and writes its heartbeat; 0 means 1s.
	Interval time.Duration
	// Timeout bounds each database call; 0 means 2s.
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Node is this process's membership in the cluster. Create it with New and
// run it with Run; its methods are safe for concurrent use.
type Node struct {
	cfg     Config
	started time.Time

	mu     sync.Mutex // guards term and cancel
	term   context.Context
	cancel context.CancelFunc // ends term; nil while not leader
}

// New returns a Node; nothing happens until Run.
func New(cfg Config) *Node {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sealed == nil {
		cfg.Sealed = func() bool { return false }
	}
	if cfg.SealPoll <= 0 {
		cfg.SealPoll = min(250*time.Millisecond, cfg.Interval)
	}
	return &Node{cfg: cfg, started: cfg.Now().UTC()}
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Leader returns, while this node leads, a context that is cancelled as
// soon as it stops leading (or Run ends), and true.
func (n *Node) Leader() (context.Context, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel == nil {
		return nil, false
	}
	return n.term, true
}

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool {
	_, ok := n.Leader()
	return ok
}

func (n *Node) setLeader(leader bool) {
	n.mu.Lock()
	changed := (n.cancel != nil) != leader
	if leader && n.cancel == nil {
		n.term, n.cancel = context.WithCancel(context.Background())
	} else if !leader && n.cancel != nil {
		n.cancel()
		n.term, n.cancel = nil, nil
	}
	n.mu.Unlock()
	if !changed {
		return
	}
	if leader {
		n.cfg.Logger.Info("this node is now the cluster leader", "node", n.cfg.NodeID)
	} else {
		n.cfg.Logger.Warn("this node is no longer the cluster leader", "node", n.cfg.NodeID)
	}
	if n.cfg.OnChange != nil {
		n.cfg.OnChange(leader)
	}
}

// Run campaigns for leadership and writes heartbeats until ctx ends; then it
// steps down, releases the lock and removes the node from the registry.
func (n *Node) Run(ctx context.Context) {
	var sess *pgx.Conn // the session that holds (or tries for) the lock
	defer func() {
		n.setLeader(false)
		cctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeout)
		defer cancel()
		if sess != nil {
			sess.Close(cctx) // ends the session, releasing the lock
		}
		_, _ = n.cfg.Pool.Exec(cctx, `DELETE FROM coffer_nodes WHERE id = $1`, n.cfg.NodeID)
	}()
	t := time.NewTicker(n.cfg.Interval)
	defer t.Stop()
	// A seal (or unseal) between two campaigns is acted on at once: a
	// sealed leader must not hold the lock while it cannot run the jobs.
	poll := time.NewTicker(n.cfg.SealPoll)
	defer poll.Stop()
	for {
		sealed := n.cfg.Sealed()
		sess = n.campaign(ctx, sess, sealed)
		n.heartbeat(ctx, sess)
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				break wait
			case <-poll.C:
				if n.cfg.Sealed() != sealed {
					break wait
				}
			}
		}
	}
}

// campaign keeps sess alive and tries for the lock; it returns the session
// to use next time (nil after a failure). A sealed node does not campaign:
// it steps down if it leads and ends its session, which releases the lock
// for an unsealed node to take.
func (n *Node) campaign(ctx context.Context, sess *pgx.Conn, sealed bool) *pgx.Conn {
	if sealed {
		return n.standDown(sess)
	}
	cctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	fail := func(what string, err error) *pgx.Conn {
		if n.IsLeader() {
			n.cfg.Logger.Warn("leader lost its database session", "step", what, "error", err)
		}
		n.setLeader(false)
		if sess != nil {
			sess.Close(context.Background())
		}
		return nil
	}
	if sess == nil {
		var err error
		if sess, err = n.connect(cctx); err != nil {
			return fail("connect", err)
		}
	}
	if n.IsLeader() {
		// The lock lives as long as the session: prove it still does.
		if _, err := sess.Exec(cctx, `SELECT 1`); err != nil {
			return fail("ping", err)
		}
		return sess
	}
	var got bool
	if err := sess.QueryRow(cctx, `SELECT pg_try_advisory_lock($1)`, LockKey).Scan(&got); err != nil {
		return fail("try lock", err)
	}
	if got {
		if n.cfg.Sealed() {
			// Sealed while trying: give the lock straight back.
			return n.standDown(sess)
		}
		n.setLeader(true)
	}
	return sess
}

// standDown, for a sealed node, ends leadership (cancelling the term, so
// the leader's jobs stop) and then the session, releasing the lock. It
// returns the session to use next time: none, until the node is unsealed.
func (n *Node) standDown(sess *pgx.Conn) *pgx.Conn {
	if n.IsLeader() {
		n.cfg.Logger.Warn("this node is sealed: stepping down as cluster leader", "node", n.cfg.NodeID)
	}
	n.setLeader(false)
	if sess != nil {
		cctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeout)
		defer cancel()
		// Closing the session releases the lock; should the goodbye not
		// reach PostgreSQL, the socket is closed anyway and the server
		// ends the session when it notices.
		sess.Close(cctx)
	}
	return nil
}

func (n *Node) connect(ctx context.Context) (*pgx.Conn, error) {
	cc := n.cfg.ConnConfig.Copy()
	cc.ConnectTimeout = n.cfg.Timeout
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	// If this process stops answering without closing its socket (machine
	// or network gone), PostgreSQL ends the session, and so releases the
	// lock, within seconds instead of hours. idle_session_timeout needs
	// PostgreSQL 14; older servers rely on the keepalives alone.
	idle := 3*n.cfg.Interval + n.cfg.Timeout
	for _, q := range []string{
		`SET tcp_keepalives_idle = 5`, `SET tcp_keepalives_interval = 2`, `SET tcp_keepalives_count = 3`,
		fmt.Sprintf(`SET idle_session_timeout = %d`, idle.Milliseconds()),
	} {
		_, _ = conn.Exec(ctx, q)
	}
	return conn, nil
}

// heartbeat writes the node's row, with the backend pid of sess (0 when
// the node has no session), by which Nodes tells the lock holder.
func (n *Node) heartbeat(ctx context.Context, sess *pgx.Conn) {
	cctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	now := n.cfg.Now().UTC()
	var pid int32
	if sess != nil {
		pid = int32(sess.PgConn().PID())
	}
	_, err := n.cfg.Pool.Exec(cctx, `INSERT INTO coffer_nodes (id, api_addr, sealed, leader, version, started_at, heartbeat, session_pid)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET api_addr = $2, sealed = $3, leader = $4, version = $5, started_at = $6, heartbeat = $7, session_pid = $8`,
		n.cfg.NodeID, n.cfg.APIAddr, n.cfg.Sealed(), n.IsLeader(), n.cfg.Version, n.started, now, pid)
	if err != nil {
		n.cfg.Logger.Debug("cluster heartbeat failed", "error", err)
		return
	}
	if n.IsLeader() {
		// Forget nodes gone for a day: the registry is not a history.
		_, _ = n.cfg.Pool.Exec(cctx, `DELETE FROM coffer_nodes WHERE heartbeat < $1`, now.Add(-24*time.Hour))
	}
}

// Status is one node as the registry shows it.
type Status struct {
	ID        string    `json:"id"`
	APIAddr   string    `json:"api_addr"`
	Sealed    bool      `json:"sealed"`
	Leader    bool      `json:"leader"`
	Alive     bool      `json:"alive"` // heartbeat seen recently
	Self      bool      `json:"self"`  // the node that answered
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Heartbeat time.Time `json:"heartbeat"`
}

// ErrUnavailable means the registry could not be read.
var ErrUnavailable = errors.New("cluster registry unavailable")

// Nodes lists the registry, ordered by id. The leader is the node whose
// session holds the advisory lock now, as pg_locks shows it, so the answer
// follows a fail-over at once rather than when heartbeats go stale; this
// node's own row shows what it knows of itself. A node whose session has
// ended, or whose heartbeat is older than a few intervals, is not alive.
func (n *Node) Nodes(ctx context.Context) ([]Status, error) {
	cctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	// An advisory lock on a bigint key shows in pg_locks as classid (high
	// half), objid (low half) and objsubid 1.
	rows, err := n.cfg.Pool.Query(cctx, `WITH holder AS (
			SELECT pid FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 1
				AND classid::bigint = $1 AND objid::bigint = $2
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		)
		SELECT id, api_addr, sealed, leader, version, started_at, heartbeat, session_pid,
			coalesce(session_pid IN (SELECT pid FROM holder), false),
			coalesce(session_pid = 0 OR session_pid IN (SELECT pid FROM pg_stat_activity), true)
		FROM coffer_nodes`, LockKey>>32, LockKey&0xffffffff)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer rows.Close()
	stale := n.cfg.Now().Add(-(3*n.cfg.Interval + 2*n.cfg.Timeout))
	var out []Status
	selfLeads := n.IsLeader()
	lead := -1 // index in out of the row named leader
	for rows.Next() {
		var s Status
		var pid *int32
		var holds, session bool
		if err := rows.Scan(&s.ID, &s.APIAddr, &s.Sealed, &s.Leader, &s.Version, &s.StartedAt, &s.Heartbeat, &pid, &holds, &session); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		s.Alive = s.Heartbeat.After(stale) && session
		if pid != nil {
			s.Leader = holds
		} else {
			s.Leader = s.Leader && s.Alive // a build that does not write its pid
		}
		s.Self = s.ID == n.cfg.NodeID
		if s.Self {
			// This node knows its own state better than its last heartbeat.
			s.Alive, s.Leader, s.Sealed = true, selfLeads, n.cfg.Sealed()
		} else if selfLeads {
			s.Leader = false
		}
		if s.Leader {
			// One leader at most: should two other rows claim it (a pid
			// reused by the server, an older build's row), the fresher
			// heartbeat wins.
			if lead >= 0 && !s.Heartbeat.After(out[lead].Heartbeat) {
				s.Leader = false
			} else {
				if lead >= 0 {
					out[lead].Leader = false
				}
				lead = len(out)
			}
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
