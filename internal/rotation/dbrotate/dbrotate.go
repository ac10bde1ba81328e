// Package dbrotate rotates database passwords: PostgreSQL and MySQL or
// MariaDB users, with two strategies.
//
// single: the user changes its own password (ALTER ROLE CURRENT_USER /
// ALTER USER CURRENT_USER()). Only one password exists at a time, so the
// old one stops working the moment Set runs: no grace window, and
// connections opened between Set and the application's next read fail.
//
// alternating: two users take turns. Set gives the idle user a new password
// (logged in as an administrator named by master_secret), Coffer then makes
// that user's credential current, and the user that was current stays
// valid for the grace window, after which Revoke gives it a random password
// nobody knows. Applications that reconnect at any time keep working.
//
// The two users are named in the policy (options.users) and both must
// exist with the same privileges: the administrator connection changes
// the password of those two users only, whatever the secret's username
// says, and refuses users that could take over the database (PostgreSQL
// superuser, CREATEROLE, REPLICATION or BYPASSRLS roles and members of a
// superuser role; MySQL users with SUPER, CREATE USER or GRANT OPTION).
// Otherwise anyone allowed to update the secret could have the
// administrator reset the password of any role.
//
// The secret's value is a JSON object, as AWS Secrets Manager stores
// database credentials:
//
//	{"engine":"postgresql","host":"db.internal","port":5432,"username":"app",
//	 "password":"...","dbname":"app","sslmode":"require"}
//
// Other fields are kept as they are.
//
// Only the username and password are taken from the value. The database
// the rotator logs in to with them (host, port, dbname and sslmode or
// tls) is pinned by the policy: with alternating, the master secret's,
// field by field overridden by the options' host, port, dbname, sslmode
// and tls; with single, the options', which Check records from the
// secret's current value when the policy is set without them. A value
// naming another host, port, dbname or TLS setting is refused before
// anything is sent: otherwise whoever may update the secret could point
// its host at a server of theirs and receive the new password (which
// alternating sets on the real database) or the current one.
package dbrotate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/rotation/password"
	"github.com/coffer-dev/coffer/internal/secret"
)

// Strategies.
const (
	Single      = "single"
	Alternating = "alternating"
)

// alwaysExcluded are characters generated passwords never contain: they
// break connection strings and URLs, and quoting in SQL.
const alwaysExcluded = "'\"\\`/@:%?#&=;"

// connectTimeout bounds logging in to a database.
const connectTimeout = 10 * time.Second

// Options configure a database rotator.
type Options struct {
	Strategy string `json:"strategy"` // single (default) or alternating
	// MasterSecret names the secret holding administrator credentials
	// (the same JSON shape), for alternating. The administrator's host,
	// port and dbname are used to connect, never the rotated secret's.
	MasterSecret string `json:"master_secret,omitempty"`
	// Users are the two users of the alternating strategy, required with
	// it; both must exist. The secret's username must be one of them.
	Users []string `json:"users,omitempty"`
	// Password shapes generated passwords; some characters are always excluded.
	Password password.Policy `json:"password,omitzero"`

	// Host, Port, DBName, SSLMode (PostgreSQL) and TLS (MySQL) pin the
	// database the rotator logs in to with the secret's credentials; the
	// secret's value must name the same. With alternating, each defaults
	// to the master secret's; with single, Check records them from the
	// secret's current value when Host is not given (a prefix policy
	// must give Host).
	Host    string  `json:"host,omitempty"`
	Port    portNum `json:"port,omitempty"`
	DBName  string  `json:"dbname,omitempty"`
	SSLMode string  `json:"sslmode,omitempty"`
	TLS     string  `json:"tls,omitempty"`
}

// Value is the JSON a database secret holds.
type Value struct {
	Engine   string  `json:"engine"`
	Host     string  `json:"host"`
	Port     portNum `json:"port,omitempty"`
	Username string  `json:"username"`
	Password string  `json:"password"`
	DBName   string  `json:"dbname,omitempty"`
	SSLMode  string  `json:"sslmode,omitempty"` // PostgreSQL: disable, prefer (default), require, verify-full
	TLS      string  `json:"tls,omitempty"`     // MySQL: false (default), true, skip-verify, preferred
}

// portNum accepts a port as a number or a string.
type portNum int

func (p *portNum) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*p = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("port must be a number from 1 to 65535")
	}
	*p = portNum(n)
	return nil
}

// dialect is what differs between PostgreSQL and MySQL.
type dialect interface {
	engine() string
	defaultPort() int
	// login opens a connection as v and checks it with a round trip.
	login(ctx context.Context, v *Value) (conn, error)
	// setOwnPassword changes the logged-in user's password.
	setOwnPassword(ctx context.Context, c conn, pw string) error
	// setPassword changes user's password as an administrator. A missing
	// user is an error with mustExist, else nothing to do (revocation).
	// It refuses users privileged enough to administer the database.
	setPassword(ctx context.Context, c conn, user, pw string, mustExist bool) error
	maxUserLen() int
}

type conn interface {
	Close() error
}

// Rotator rotates a database user's password. It is safe for concurrent use.
type Rotator struct {
	d dialect
}

// Postgres returns the postgresql rotator.
func Postgres() *Rotator { return &Rotator{d: pgDialect{}} }

// MySQL returns the mysql rotator (MySQL and MariaDB).
func MySQL() *Rotator { return &Rotator{d: myDialect{}} }

func invalid(field, format string, args ...any) error {
	return &secret.ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (r *Rotator) options(raw json.RawMessage) (*Options, error) {
	var o Options
	if err := rotation.DecodeOptions(raw, &o); err != nil {
		return nil, err
	}
	if o.Strategy == "" {
		o.Strategy = Single
	}
	return &o, nil
}

// Check validates the options and, for the single strategy, records the
// database the secret's current value names unless the options pin one.
func (r *Rotator) Check(raw, _ json.RawMessage, p rotation.PolicyInfo) (json.RawMessage, error) {
	o, err := r.options(raw)
	if err != nil {
		return nil, err
	}
	if err := r.checkTarget(o); err != nil {
		return nil, err
	}
	switch o.Strategy {
	case Single:
		if p.Grace > 0 {
			return nil, invalid("grace", "must be 0 with the single strategy: the user has one password, so the old one stops working at once; use strategy alternating for a grace window")
		}
		if o.MasterSecret != "" || len(o.Users) > 0 {
			return nil, invalid("options", "master_secret and users are for the alternating strategy")
		}
		if o.Host == "" {
			if p.Current == nil {
				return nil, invalid("options.host", "is required here (a prefix policy, or a secret without a value): with the single strategy the policy pins the database (host, port, dbname, sslmode or tls) the secret's password may be sent to")
			}
			cur, _, err := r.parse(p.Current, "current")
			if err != nil {
				return nil, invalid("options.host", "cannot be recorded from the secret's value (%v); give host, port, dbname and sslmode or tls in the options", err)
			}
			if o.Port == 0 {
				o.Port = cur.Port
			}
			if o.DBName == "" {
				o.DBName = cur.DBName
			}
			if r.isPG() && o.SSLMode == "" {
				o.SSLMode = cur.SSLMode
			}
			if !r.isPG() && o.TLS == "" {
				o.TLS = cur.TLS
			}
			o.Host = cur.Host
			if err := r.checkTarget(o); err != nil {
				return nil, err
			}
		}
	case Alternating:
		if o.MasterSecret == "" {
			return nil, invalid("options.master_secret", "is required with the alternating strategy: the secret holding administrator credentials")
		}
		if err := secret.ValidateName(o.MasterSecret); err != nil {
			return nil, invalid("options.master_secret", "%v", err)
		}
		if o.MasterSecret == p.Name {
			return nil, invalid("options.master_secret", "must be another secret")
		}
		if len(o.Users) != 2 {
			return nil, invalid("options.users", "give the two existing users that take turns, e.g. [\"app_blue\",\"app_green\"]: the administrator changes the passwords of these two only")
		}
		if len(o.Users) == 2 && o.Users[0] == o.Users[1] {
			return nil, invalid("options.users", "must be two different users")
		}
		for _, u := range o.Users {
			if err := r.checkUser(u); err != nil {
				return nil, err
			}
		}
	default:
		return nil, invalid("options.strategy", "must be single or alternating")
	}
	if _, err := r.policy(o).Generate(); err != nil {
		var pe *password.Error
		if errors.As(err, &pe) {
			return nil, invalid("options.password."+pe.Field, "%s", pe.Msg)
		}
		return nil, err
	}
	return json.Marshal(o)
}

func (r *Rotator) isPG() bool { return r.d.engine() == "postgresql" }

// checkTarget validates the options' connection settings.
func (r *Rotator) checkTarget(o *Options) error {
	if len(o.Host) > 255 || strings.ContainsFunc(o.Host, func(c rune) bool { return c <= 0x20 || c == 0x7f || strings.ContainsRune("/?#@", c) }) {
		return invalid("options.host", "must be a host name or IP address")
	}
	if r.isPG() {
		if o.TLS != "" {
			return invalid("options.tls", "is for MySQL; PostgreSQL takes sslmode")
		}
		switch o.SSLMode {
		case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
		default:
			return invalid("options.sslmode", "want disable, prefer, require, verify-ca or verify-full")
		}
		return nil
	}
	if o.SSLMode != "" {
		return invalid("options.sslmode", "is for PostgreSQL; MySQL takes tls")
	}
	if _, err := mysqlTLS(o.TLS); err != nil {
		return invalid("options.tls", "%v", err)
	}
	return nil
}

func (r *Rotator) checkUser(u string) error {
	if u == "" || len(u) > r.d.maxUserLen() {
		return invalid("options.users", "user names must be 1 to %d characters", r.d.maxUserLen())
	}
	for _, c := range u {
		if c < 0x20 || c == 0x7f || c == '\'' || c == '\\' || c == '"' || c == '`' {
			return invalid("options.users", "user names must not contain quotes, backslashes or control characters")
		}
	}
	return nil
}

// References names the administrator secret, which the rotator reads.
func (r *Rotator) References(raw json.RawMessage) []string {
	o, err := r.options(raw)
	if err != nil || o.MasterSecret == "" {
		return nil
	}
	return []string{o.MasterSecret}
}

func (r *Rotator) policy(o *Options) password.Policy {
	p := o.Password
	p.ExcludeCharacters += alwaysExcluded
	return p
}

// parse decodes a secret value holding database credentials.
func (r *Rotator) parse(v *secret.Value, what string) (*Value, map[string]json.RawMessage, error) {
	if v == nil {
		return nil, nil, fmt.Errorf("%s: no value", what)
	}
	var out Value
	var all map[string]json.RawMessage
	if err := json.Unmarshal(v.Data, &all); err != nil || all == nil {
		return nil, nil, fmt.Errorf("%s version %d is not a JSON object like {\"engine\":\"%s\",\"host\":...,\"username\":...,\"password\":...}", what, v.Version, r.d.engine())
	}
	if err := json.Unmarshal(v.Data, &out); err != nil {
		return nil, nil, fmt.Errorf("%s version %d: %v", what, v.Version, fieldError(err))
	}
	switch {
	case out.Engine != "" && !strings.EqualFold(out.Engine, r.d.engine()) && !(r.d.engine() == "mysql" && strings.EqualFold(out.Engine, "mariadb")) &&
		!(r.d.engine() == "postgresql" && strings.EqualFold(out.Engine, "postgres")):
		return nil, nil, fmt.Errorf("%s version %d: engine is %q, but the rotator is %s", what, v.Version, out.Engine, r.d.engine())
	case out.Host == "":
		return nil, nil, fmt.Errorf("%s version %d: host is missing", what, v.Version)
	case out.Username == "":
		return nil, nil, fmt.Errorf("%s version %d: username is missing", what, v.Version)
	}
	if out.Port == 0 {
		out.Port = portNum(r.d.defaultPort())
	}
	return &out, all, nil
}

// fieldError keeps a JSON decoding error's field and drops any value.
func fieldError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	return "invalid JSON"
}

func (r *Rotator) master(ctx context.Context, j *rotation.Job, o *Options) (*Value, error) {
	mv, err := j.Lookup(ctx, o.MasterSecret)
	if err != nil {
		return nil, fmt.Errorf("read master secret %s: %w", o.MasterSecret, err)
	}
	m, _, err := r.parse(mv, "master secret "+o.MasterSecret)
	return m, err
}

// otherUser returns the alternating partner of user, which must be one of
// the policy's pair.
func otherUser(o *Options, user string) (string, error) {
	if len(o.Users) != 2 {
		return "", errors.New("the policy names no users: set it again with options.users")
	}
	switch user {
	case o.Users[0]:
		return o.Users[1], nil
	case o.Users[1]:
		return o.Users[0], nil
	}
	return "", fmt.Errorf("the username %q is neither of the policy's users %q and %q", user, o.Users[0], o.Users[1])
}

// pinned checks that user is one of the policy's pair: the values that
// name it are writable by anyone who may update the secret, the pair only
// by whoever sets the policy.
func pinned(o *Options, user string) error {
	_, err := otherUser(o, user)
	return err
}

// target returns the database the policy pins: where the rotator may log
// in with the secret's credentials. m is the master secret's value, for
// alternating.
func (r *Rotator) target(o *Options, m *Value) (*Value, error) {
	var t Value
	if o.Strategy == Alternating {
		t = Value{Host: m.Host, Port: m.Port, DBName: m.DBName, SSLMode: m.SSLMode, TLS: m.TLS}
	} else if o.Host == "" {
		return nil, errors.New("the policy pins no database host (it was set before hosts were pinned); set the policy again, which records the host, port, dbname and TLS setting of the secret's current value")
	}
	if o.Host != "" {
		t.Host = o.Host
	}
	if o.Port != 0 {
		t.Port = o.Port
	}
	if o.DBName != "" {
		t.DBName = o.DBName
	}
	if o.SSLMode != "" {
		t.SSLMode = o.SSLMode
	}
	if o.TLS != "" {
		t.TLS = o.TLS
	}
	if t.Port == 0 {
		t.Port = portNum(r.d.defaultPort())
	}
	return &t, nil
}

// endpoint is a value's connection settings, normalised for comparison.
type endpoint struct {
	host   string
	port   int
	dbname string
	tls    string
}

func (r *Rotator) endpoint(v *Value) endpoint {
	e := endpoint{host: strings.ToLower(strings.TrimSuffix(v.Host, ".")), port: int(v.Port), dbname: v.DBName}
	if e.port == 0 {
		e.port = r.d.defaultPort()
	}
	if r.isPG() {
		if e.dbname == "" {
			e.dbname = "postgres"
		}
		e.tls = v.SSLMode
		if e.tls == "" {
			e.tls = "prefer"
		}
	} else if mode, err := mysqlTLS(v.TLS); err == nil {
		e.tls = mode
	} else {
		e.tls = "invalid:" + v.TLS
	}
	return e
}

// onTarget checks that v names the pinned database t; only its username
// and password may differ. The error names what differs, never a password.
func (r *Rotator) onTarget(t, v *Value, what string) error {
	a, b := r.endpoint(t), r.endpoint(v)
	var diff []string
	if a.host != b.host {
		diff = append(diff, fmt.Sprintf("host %q (pinned: %q)", v.Host, t.Host))
	}
	if a.port != b.port {
		diff = append(diff, fmt.Sprintf("port %d (pinned: %d)", b.port, a.port))
	}
	if a.dbname != b.dbname {
		diff = append(diff, fmt.Sprintf("dbname %q (pinned: %q)", v.DBName, t.DBName))
	}
	if a.tls != b.tls {
		field := "tls"
		if r.isPG() {
			field = "sslmode"
		}
		diff = append(diff, fmt.Sprintf("%s %q (pinned: %q)", field, strings.TrimPrefix(b.tls, "invalid:"), a.tls))
	}
	if len(diff) > 0 {
		return fmt.Errorf("%s names %s: refusing to send its credentials to a database the policy does not pin; if the database moved, set the policy again (options host, port, dbname, sslmode or tls)", what, strings.Join(diff, ", "))
	}
	return nil
}

// login logs in to the pinned database t with v's username and password.
func (r *Rotator) login(ctx context.Context, t, v *Value) (conn, error) {
	lv := *t
	lv.Username, lv.Password = v.Username, v.Password
	return r.d.login(ctx, &lv)
}

// pinnedTarget reads what target needs and returns the pinned database,
// and the master secret's value for alternating (else nil).
func (r *Rotator) pinnedTarget(ctx context.Context, j *rotation.Job, o *Options) (t, m *Value, err error) {
	if o.Strategy == Alternating {
		if m, err = r.master(ctx, j, o); err != nil {
			return nil, nil, err
		}
	}
	t, err = r.target(o, m)
	return t, m, err
}

// Create returns the current value with a new password (and, alternating,
// the other user).
func (r *Rotator) Create(ctx context.Context, j *rotation.Job) ([]byte, string, error) {
	o, err := r.options(j.Options)
	if err != nil {
		return nil, "", err
	}
	cur, all, err := r.parse(j.Current, "current")
	if err != nil {
		return nil, "", err
	}
	t, _, err := r.pinnedTarget(ctx, j, o)
	if err != nil {
		return nil, "", err
	}
	if err := r.onTarget(t, cur, "the current value"); err != nil {
		return nil, "", err
	}
	pw, err := r.policy(o).Generate()
	if err != nil {
		return nil, "", err
	}
	user := cur.Username
	if o.Strategy == Alternating {
		if user, err = otherUser(o, cur.Username); err != nil {
			return nil, "", err
		}
		if err := r.checkUser(user); err != nil {
			return nil, "", err
		}
	}
	all["username"], _ = json.Marshal(user)
	all["password"], _ = json.Marshal(pw)
	if _, ok := all["engine"]; !ok {
		all["engine"], _ = json.Marshal(r.d.engine())
	}
	out, err := json.Marshal(all)
	return out, secret.TypeJSON, err
}

// Set gives the target user the pending password.
func (r *Rotator) Set(ctx context.Context, j *rotation.Job) error {
	o, err := r.options(j.Options)
	if err != nil {
		return err
	}
	pend, _, err := r.parse(j.Pending, "pending")
	if err != nil {
		return err
	}
	t, m, err := r.pinnedTarget(ctx, j, o)
	if err != nil {
		return err
	}
	if err := r.onTarget(t, pend, "the pending value"); err != nil {
		return err
	}
	if o.Strategy == Alternating {
		cur, _, err := r.parse(j.Current, "current")
		if err != nil {
			return err
		}
		if err := pinned(o, pend.Username); err != nil {
			return err
		}
		if pend.Username == cur.Username {
			return fmt.Errorf("pending and current are both user %s; the alternating strategy changes the idle user", cur.Username)
		}
		admin, err := r.d.login(ctx, m)
		if err != nil {
			return fmt.Errorf("log in as the administrator %s: %w", m.Username, err)
		}
		defer admin.Close()
		return r.d.setPassword(ctx, admin, pend.Username, pend.Password, true)
	}
	// Single: log in with the current password and change it. If that
	// login fails, an earlier attempt may already have set the new one.
	cur, _, err := r.parse(j.Current, "current")
	if err != nil {
		return err
	}
	if err := r.onTarget(t, cur, "the current value"); err != nil {
		return err
	}
	c, err := r.login(ctx, t, cur)
	if err != nil {
		if c2, err2 := r.login(ctx, t, pend); err2 == nil {
			c2.Close()
			return nil
		}
		return fmt.Errorf("log in as %s with the current password: %w", cur.Username, err)
	}
	defer c.Close()
	return r.d.setOwnPassword(ctx, c, pend.Password)
}

// Test logs in with v's username and password to the pinned database,
// which v must name.
func (r *Rotator) Test(ctx context.Context, j *rotation.Job, v *secret.Value) error {
	o, err := r.options(j.Options)
	if err != nil {
		return err
	}
	val, _, err := r.parse(v, "version")
	if err != nil {
		return err
	}
	t, _, err := r.pinnedTarget(ctx, j, o)
	if err != nil {
		return err
	}
	if err := r.onTarget(t, val, fmt.Sprintf("version %d", v.Version)); err != nil {
		return err
	}
	c, err := r.login(ctx, t, val)
	if err != nil {
		return fmt.Errorf("log in as %s with version %d: %w", val.Username, v.Version, err)
	}
	return c.Close()
}

// Finish does nothing: promotion is Coffer's.
func (r *Rotator) Finish(context.Context, *rotation.Job) error { return nil }

// Revoke gives the previous user (alternating) a random password nobody
// knows. With the single strategy the old password died at Set.
func (r *Rotator) Revoke(ctx context.Context, j *rotation.Job) error {
	o, err := r.options(j.Options)
	if err != nil {
		return err
	}
	if o.Strategy != Alternating {
		return nil
	}
	prev, _, err := r.parse(j.Previous, "previous")
	if err != nil {
		return err
	}
	if cur, _, err := r.parse(j.Current, "current"); err == nil && cur.Username == prev.Username {
		return nil // the same user is current again: revoking would lock it out
	}
	if err := pinned(o, prev.Username); err != nil {
		return err
	}
	m, err := r.master(ctx, j, o)
	if err != nil {
		return err
	}
	pw, err := r.policy(&Options{}).Generate()
	if err != nil {
		return err
	}
	admin, err := r.d.login(ctx, m)
	if err != nil {
		return fmt.Errorf("log in as the administrator %s: %w", m.Username, err)
	}
	defer admin.Close()
	return r.d.setPassword(ctx, admin, prev.Username, pw, false)
}

// mysqlTLS returns the go-sql-driver tls parameter for a value's tls field.
func mysqlTLS(mode string) (string, error) {
	switch strings.ToLower(mode) {
	case "", "false", "disable":
		return "false", nil
	case "true", "verify-full", "require":
		return "true", nil
	case "skip-verify", "preferred":
		return strings.ToLower(mode), nil
	}
	return "", fmt.Errorf("tls %q: want false, true, skip-verify or preferred", mode)
}
