package dbrotate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// clock is an injected clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t       *testing.T
	clock   *clock
	secrets *secret.Service
	engine  *rotation.Engine
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, clock: &clock{t: time.Now().UTC()}}
	store := mem.New()
	f.secrets = secret.New(store, f.clock.Now)
	f.engine = rotation.New(rotation.Config{Store: store, Secrets: f.secrets, Now: f.clock.Now,
		Jitter:   func(time.Duration) time.Duration { return 0 },
		Rotators: map[string]rotation.Rotator{"postgresql": Postgres(), "mysql": MySQL()}})
	return f
}

func (f *fixture) putJSON(name string, v any) {
	f.t.Helper()
	b, _ := json.Marshal(v)
	if _, err := f.secrets.Put(context.Background(), secret.PutInput{Name: name, Value: b, Type: secret.TypeJSON}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) current(name string) *Value {
	f.t.Helper()
	v, err := f.secrets.Get(context.Background(), name, secret.Selector{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out Value
	if err := json.Unmarshal(v.Data, &out); err != nil {
		f.t.Fatal(err)
	}
	return &out
}

func (f *fixture) rotate(name string) *rotation.State {
	f.t.Helper()
	st, err := f.engine.Rotate(context.Background(), name, rotation.RotateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if st.Status != rotation.StatusScheduled || st.LastError != "" {
		f.t.Fatalf("rotation of %s did not succeed: %+v", name, st)
	}
	return st
}

func randSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func exec(t testing.TB, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// ---- PostgreSQL ----

type pgServer struct {
	admin *sql.DB
	host  string
	port  int
	db    string
}

func newPG(t *testing.T) *pgServer {
	_, dbURL := testdb.PostgresWithPasswords(t)
	u, _ := url.Parse(dbURL)
	port, _ := strconv.Atoi(u.Port())
	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return &pgServer{admin: admin, host: u.Hostname(), port: port, db: strings.TrimPrefix(u.Path, "/")}
}

func (s *pgServer) value(user, pw string) map[string]any {
	return map[string]any{"engine": "postgresql", "host": s.host, "port": s.port, "username": user, "password": pw, "dbname": s.db, "sslmode": "disable"}
}

func (s *pgServer) login(user, pw string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Postgres().d.login(ctx, &Value{Host: s.host, Port: portNum(s.port), Username: user, Password: pw, DBName: s.db, SSLMode: "disable"})
	if err != nil {
		return err
	}
	return c.Close()
}

func (s *pgServer) role(t *testing.T, name, pw string) {
	t.Helper()
	exec(t, s.admin, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", name, pw))
	t.Cleanup(func() {
		s.admin.Exec("DROP OWNED BY " + name)
		s.admin.Exec("DROP ROLE IF EXISTS " + name)
		s.admin.Exec("DROP ROLE IF EXISTS " + name + "_clone")
	})
}

func TestPostgresSingleUser(t *testing.T) {
	pg := newPG(t)
	f := newFixture(t)
	user := "app_" + randSuffix()
	pg.role(t, user, "initial-pw")
	if err := pg.login(user, "wrong-pw"); err == nil {
		t.Fatal("the server accepts a wrong password; password auth is not on")
	}
	f.putJSON("db/single", pg.value(user, "initial-pw"))
	_, err := f.engine.SetPolicy(context.Background(), "db/single", rotation.Policy{Rotator: "postgresql", Grace: rotation.Duration(time.Hour), Options: json.RawMessage(`{"strategy":"single"}`)}, "t")
	var ve *secret.ValidationError
	if !errors.As(err, &ve) || ve.Field != "grace" {
		t.Fatalf("single strategy with a grace window = %v, want refused", err)
	}
	if _, err := f.engine.SetPolicy(context.Background(), "db/single", rotation.Policy{Schedule: "every 30d", Rotator: "postgresql", Options: json.RawMessage(`{"strategy":"single","password":{"length":24}}`)}, "t"); err != nil {
		t.Fatal(err)
	}
	f.rotate("db/single")
	cur := f.current("db/single")
	if cur.Username != user || cur.Password == "initial-pw" || len(cur.Password) != 24 {
		t.Fatalf("current after rotation: user %s, %d-character password", cur.Username, len(cur.Password))
	}
	if err := pg.login(user, cur.Password); err != nil {
		t.Fatalf("the new password does not work: %v", err)
	}
	if err := pg.login(user, "initial-pw"); err == nil {
		t.Fatal("the old password still works after a single-user rotation")
	}
	// The statement log never sees the password: Set sends a SCRAM verifier.
	var stored string
	if err := pg.admin.QueryRow("SELECT rolpassword FROM pg_authid WHERE rolname = $1", user).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "SCRAM-SHA-256$4096:") {
		t.Fatalf("stored password %q is not a SCRAM verifier", stored[:min(len(stored), 20)])
	}
	// Rotating again starts from the new password.
	f.rotate("db/single")
	if err := pg.login(user, f.current("db/single").Password); err != nil {
		t.Fatalf("second rotation: %v", err)
	}
}

func TestPostgresSingleUserWrongCurrentFails(t *testing.T) {
	pg := newPG(t)
	f := newFixture(t)
	user := "app_" + randSuffix()
	pg.role(t, user, "real-pw")
	f.putJSON("db/stale", pg.value(user, "stale-pw"))
	if _, err := f.engine.SetPolicy(context.Background(), "db/stale", rotation.Policy{Rotator: "postgresql", MaxAttempts: 1}, "t"); err != nil {
		t.Fatal(err)
	}
	st, err := f.engine.Rotate(context.Background(), "db/stale", rotation.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != rotation.StatusFailed || !strings.Contains(st.LastError, "password authentication failed") || strings.Contains(st.LastError, "stale-pw") {
		t.Fatalf("state = %+v", st)
	}
	if err := pg.login(user, "real-pw"); err != nil {
		t.Fatalf("a failed rotation changed the password: %v", err)
	}
}

// TestPostgresAlternatingPoolKeepsWorking rotates three times while an
// application's connection pool, which takes its credentials from Coffer's
// current version for every new connection and recycles connections every
// few milliseconds, queries without pause: not one query may fail. After
// the grace window the previous user's password is refused.
func TestPostgresAlternatingPoolKeepsWorking(t *testing.T) {
	pg := newPG(t)
	f := newFixture(t)
	user := "app_" + randSuffix()
	pg.role(t, user, "initial-pw")
	pg.role(t, user+"_clone", "clone-initial-unknown")
	exec(t, pg.admin, "CREATE TABLE orders (id int)")
	exec(t, pg.admin, "INSERT INTO orders VALUES (1), (2)")
	exec(t, pg.admin, "GRANT SELECT ON orders TO "+user+", "+user+"_clone")
	f.putJSON("db/admin", pg.value("postgres", "unused"))
	f.putJSON("db/app", pg.value(user, "initial-pw"))
	if _, err := f.engine.SetPolicy(context.Background(), "db/app", rotation.Policy{Schedule: "every 1d", Grace: rotation.Duration(time.Hour), Rotator: "postgresql",
		Options: json.RawMessage(fmt.Sprintf(`{"strategy":"alternating","master_secret":"db/admin","users":[%q,%q]}`, user, user+"_clone"))}, "t"); err != nil {
		t.Fatal(err)
	}

	// The application: a pool that reads current credentials for each new connection.
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s/%s?sslmode=disable", net.JoinHostPort(pg.host, strconv.Itoa(pg.port)), pg.db))
	if err != nil {
		t.Fatal(err)
	}
	var connects atomic.Int64
	pool := stdlib.OpenDB(*cfg, stdlib.OptionBeforeConnect(func(ctx context.Context, cc *pgx.ConnConfig) error {
		v, err := f.secrets.Get(ctx, "db/app", secret.Selector{})
		if err != nil {
			return err
		}
		var cur Value
		json.Unmarshal(v.Data, &cur)
		cc.User, cc.Password = cur.Username, cur.Password
		connects.Add(1)
		return nil
	}))
	defer pool.Close()
	pool.SetMaxOpenConns(4)
	pool.SetConnMaxLifetime(30 * time.Millisecond)
	var (
		queries atomic.Int64
		failMu  sync.Mutex
		fails   []string
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				if err := pool.QueryRow("SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
					failMu.Lock()
					fails = append(fails, fmt.Sprint(err))
					failMu.Unlock()
				}
				queries.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	users := map[string]bool{}
	for range 3 {
		f.clock.Advance(24 * time.Hour) // the previous grace window ends first, then the next rotation runs
		if _, err := f.engine.RunDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		cur := f.current("db/app")
		users[cur.Username] = true
		if st, _ := f.engine.Status(context.Background(), "db/app"); st.State.Status != rotation.StatusScheduled || st.State.LastError != "" {
			t.Fatalf("rotation state: %+v", st.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d of %d application queries failed during rotation, first: %s", len(fails), queries.Load(), fails[0])
	}
	if len(users) != 2 || !users[user] || !users[user+"_clone"] {
		t.Fatalf("current users over three rotations = %v, want %s and %s_clone in turn", users, user, user)
	}
	if connects.Load() < 6 {
		t.Fatalf("the pool opened only %d connections; the test proves little", connects.Load())
	}
	t.Logf("%d queries, %d new connections, no failure", queries.Load(), connects.Load())

	// Inside the grace window both users log in; after it the previous is refused.
	cur := f.current("db/app")
	prevV, err := f.secrets.Get(context.Background(), "db/app", secret.Selector{Stage: secret.StagePrevious})
	if err != nil {
		t.Fatal(err)
	}
	var prev Value
	json.Unmarshal(prevV.Data, &prev)
	if prev.Username == cur.Username {
		t.Fatalf("previous and current are the same user %s", cur.Username)
	}
	if err := pg.login(prev.Username, prev.Password); err != nil {
		t.Fatalf("inside the grace window the previous credential must work: %v", err)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.engine.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := pg.login(prev.Username, prev.Password); err == nil {
		t.Fatal("the previous credential still works after the grace window")
	}
	if err := pg.login(cur.Username, cur.Password); err != nil {
		t.Fatalf("the current credential stopped working: %v", err)
	}
}

// ---- MariaDB / MySQL ----

type myServer struct {
	admin *sql.DB
	host  string
	port  int
	db    string
}

func newMy(t *testing.T) *myServer {
	dsn := testdb.MySQL(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	host, port, _ := net.SplitHostPort(cfg.Addr)
	p, _ := strconv.Atoi(port)
	return &myServer{admin: admin, host: host, port: p, db: cfg.DBName}
}

func (s *myServer) user(t *testing.T, name, pw string) {
	t.Helper()
	exec(t, s.admin, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", name, pw))
	exec(t, s.admin, fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%'", s.db, name))
	t.Cleanup(func() { s.admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", name)) })
}

func (s *myServer) value(user, pw string) map[string]any {
	return map[string]any{"engine": "mysql", "host": s.host, "port": s.port, "username": user, "password": pw, "dbname": s.db}
}

func (s *myServer) login(user, pw string) error {
	c, err := MySQL().d.login(context.Background(), &Value{Host: s.host, Port: portNum(s.port), Username: user, Password: pw, DBName: s.db})
	if err != nil {
		return err
	}
	return c.Close()
}

func TestMySQLSingleUser(t *testing.T) {
	my := newMy(t)
	f := newFixture(t)
	user := "app_" + randSuffix()
	my.user(t, user, "initial-pw")
	if err := my.login(user, "wrong-pw"); err == nil {
		t.Fatal("the server accepts a wrong password")
	}
	f.putJSON("db/my", my.value(user, "initial-pw"))
	if _, err := f.engine.SetPolicy(context.Background(), "db/my", rotation.Policy{Rotator: "mysql"}, "t"); err != nil {
		t.Fatal(err)
	}
	f.rotate("db/my")
	cur := f.current("db/my")
	if err := my.login(user, cur.Password); err != nil {
		t.Fatalf("the new password does not work: %v", err)
	}
	if err := my.login(user, "initial-pw"); err == nil {
		t.Fatal("the old password still works")
	}
}

func TestMySQLAlternating(t *testing.T) {
	my := newMy(t)
	f := newFixture(t)
	blue, green := "blue_"+randSuffix(), "green_"+randSuffix()
	my.user(t, blue, "blue-pw")
	my.user(t, green, "green-initial-unknown")
	admin := my.value("root", "")
	f.putJSON("db/root", admin)
	f.putJSON("db/app", my.value(blue, "blue-pw"))
	opts := fmt.Sprintf(`{"strategy":"alternating","master_secret":"db/root","users":[%q,%q]}`, blue, green)
	if _, err := f.engine.SetPolicy(context.Background(), "db/app", rotation.Policy{Schedule: "every 1d", Grace: rotation.Duration(time.Hour), Rotator: "mysql", Options: json.RawMessage(opts)}, "t"); err != nil {
		t.Fatal(err)
	}
	f.rotate("db/app")
	cur := f.current("db/app")
	if cur.Username != green {
		t.Fatalf("current user after one rotation = %s, want %s", cur.Username, green)
	}
	if err := my.login(green, cur.Password); err != nil {
		t.Fatalf("the new credential does not work: %v", err)
	}
	if err := my.login(blue, "blue-pw"); err != nil {
		t.Fatalf("inside the grace window the old credential must work: %v", err)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.engine.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := my.login(blue, "blue-pw"); err == nil {
		t.Fatal("the old credential still works after the grace window")
	}
	if err := my.login(green, cur.Password); err != nil {
		t.Fatalf("the current credential stopped working: %v", err)
	}
	// The next rotation swaps back to blue.
	f.rotate("db/app")
	if cur := f.current("db/app"); cur.Username != blue || my.login(blue, cur.Password) != nil {
		t.Fatalf("second rotation: current user %s does not log in", cur.Username)
	}
}

func TestCheckOptions(t *testing.T) {
	tests := []struct {
		name  string
		opts  string
		grace time.Duration
		field string
	}{
		{"unknown strategy", `{"strategy":"triple"}`, 0, "options.strategy"},
		{"alternating without master", `{"strategy":"alternating"}`, 0, "options.master_secret"},
		{"alternating without users", `{"strategy":"alternating","master_secret":"m"}`, 0, "options.users"},
		{"one user", `{"strategy":"alternating","master_secret":"m","users":["a"]}`, 0, "options.users"},
		{"quote in user", `{"strategy":"alternating","master_secret":"m","users":["a","b'c"]}`, 0, "options.users"},
		{"single with grace", `{}`, time.Minute, "grace"},
		{"unknown field", `{"strategy":"single","bogus":1}`, 0, "options"},
		{"impossible password", `{"password":{"length":2}}`, 0, "options.password.length"},
	}
	cur := &secret.Value{Version: 1, Type: secret.TypeJSON, Data: []byte(`{"host":"db.internal","username":"app","password":"pw"}`)}
	tests = append(tests, []struct {
		name  string
		opts  string
		grace time.Duration
		field string
	}{
		{"tls on postgres", `{"tls":"true"}`, 0, "options.tls"},
		{"bad sslmode", `{"sslmode":"sometimes"}`, 0, "options.sslmode"},
		{"bad host", `{"host":"evil.example/x"}`, 0, "options.host"},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Postgres().Check(json.RawMessage(tt.opts), nil, rotation.PolicyInfo{Name: "db/x", Grace: tt.grace, Current: cur})
			var ve *secret.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("Check(%s) = %v, want an error on %s", tt.opts, err, tt.field)
			}
		})
	}
}

// TestPostgresAlternatingOnlyTouchesThePair: whoever may update the secret
// controls its username, but the administrator connection changes the
// passwords of the policy's two users only, and never of privileged roles.
func TestPostgresAlternatingOnlyTouchesThePair(t *testing.T) {
	pg := newPG(t)
	f := newFixture(t)
	blue, green, victim := "blue_"+randSuffix(), "green_"+randSuffix(), "victim_"+randSuffix()
	pg.role(t, blue, "blue-pw")
	pg.role(t, green, "green-unknown")
	pg.role(t, victim, "victim-pw")
	f.putJSON("db/admin", pg.value("postgres", "unused"))
	f.putJSON("db/app", pg.value(blue, "blue-pw"))
	opts := fmt.Sprintf(`{"strategy":"alternating","master_secret":"db/admin","users":[%q,%q]}`, blue, green)
	if _, err := f.engine.SetPolicy(context.Background(), "db/app", rotation.Policy{Rotator: "postgresql", Options: json.RawMessage(opts)}, "t"); err != nil {
		t.Fatal(err)
	}
	// The updater names another role (or its would-be clone) as the secret's user.
	for _, user := range []string{victim, victim + "_clone", "postgres"} {
		f.putJSON("db/app", pg.value(user, "whatever"))
		st, err := f.engine.Rotate(context.Background(), "db/app", rotation.RotateOptions{})
		if err != nil || st.Status == rotation.StatusScheduled && st.LastError == "" || !strings.Contains(st.LastError, "neither of the policy's users") {
			t.Fatalf("rotation with username %s = %+v, %v; want refused", user, st, err)
		}
		if _, err := f.engine.Cancel(context.Background(), "db/app", "t"); err != nil && !errors.Is(err, rotation.ErrNotRotating) {
			t.Fatal(err)
		}
	}
	if err := pg.login(victim, "victim-pw"); err != nil {
		t.Fatalf("the victim's password changed: %v", err)
	}
	var n int
	pg.admin.QueryRow("SELECT count(*) FROM pg_roles WHERE rolname = $1", victim+"_clone").Scan(&n)
	if n != 0 {
		t.Fatal("a clone role was created")
	}

	// A pair that includes a privileged role is refused at Set.
	exec(t, pg.admin, "ALTER ROLE "+green+" CREATEROLE")
	f.putJSON("db/app", pg.value(blue, "blue-pw"))
	st, err := f.engine.Rotate(context.Background(), "db/app", rotation.RotateOptions{})
	if err != nil || !strings.Contains(st.LastError, "CREATEROLE") {
		t.Fatalf("rotation to a CREATEROLE user = %+v, %v; want refused", st, err)
	}
	if err := pg.login(green, "green-unknown"); err != nil {
		t.Fatalf("the privileged role's password changed: %v", err)
	}
}

func TestMySQLAlternatingRefusesPrivilegedUsers(t *testing.T) {
	my := newMy(t)
	f := newFixture(t)
	blue, green := "blue_"+randSuffix(), "green_"+randSuffix()
	my.user(t, blue, "blue-pw")
	my.user(t, green, "green-initial")
	exec(t, my.admin, fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%' WITH GRANT OPTION", my.db, green))
	exec(t, my.admin, fmt.Sprintf("GRANT CREATE USER ON *.* TO '%s'@'%%'", green))
	f.putJSON("db/root", my.value("root", ""))
	f.putJSON("db/app", my.value(blue, "blue-pw"))
	opts := fmt.Sprintf(`{"strategy":"alternating","master_secret":"db/root","users":[%q,%q]}`, blue, green)
	if _, err := f.engine.SetPolicy(context.Background(), "db/app", rotation.Policy{Rotator: "mysql", Options: json.RawMessage(opts)}, "t"); err != nil {
		t.Fatal(err)
	}
	st, err := f.engine.Rotate(context.Background(), "db/app", rotation.RotateOptions{})
	if err != nil || !strings.Contains(st.LastError, "CREATE USER") {
		t.Fatalf("rotation to a user with CREATE USER = %+v, %v; want refused", st, err)
	}
	if err := my.login(green, "green-initial"); err != nil {
		t.Fatalf("the privileged user's password changed: %v", err)
	}
}

// trap is a TCP server that counts connections: a database host the
// policy does not pin, which must never be dialled.
type trap struct {
	ln    net.Listener
	conns atomic.Int64
}

func newTrap(t *testing.T) *trap {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tr
}

func (tr *trap) port() int { return tr.ln.Addr().(*net.TCPAddr).Port }

func jsonValue(v map[string]any, version int) *secret.Value {
	b, _ := json.Marshal(v)
	return &secret.Value{Version: version, Type: secret.TypeJSON, Data: b}
}

// TestPostgresAlternatingPinsTheDatabase: whoever may update the secret
// controls its host, port, dbname and sslmode, but the rotator logs in
// with the new password only to the database the master secret (or the
// policy) names, and refuses values naming another before anything is
// set or sent.
func TestPostgresAlternatingPinsTheDatabase(t *testing.T) {
	pg := newPG(t)
	f := newFixture(t)
	tr := newTrap(t)
	blue, green := "blue_"+randSuffix(), "green_"+randSuffix()
	pg.role(t, blue, "blue-pw")
	pg.role(t, green, "green-unknown")
	f.putJSON("db/admin", pg.value("postgres", "unused"))
	opts := fmt.Sprintf(`{"strategy":"alternating","master_secret":"db/admin","users":[%q,%q]}`, blue, green)
	if _, err := f.engine.SetPolicy(context.Background(), "db/app", rotation.Policy{Rotator: "postgresql", Options: json.RawMessage(opts)}, "t"); err == nil {
		t.Fatal("policy on a missing secret accepted")
	}
	f.putJSON("db/app", pg.value(blue, "blue-pw"))
	if _, err := f.engine.SetPolicy(context.Background(), "db/app", rotation.Policy{Rotator: "postgresql", Options: json.RawMessage(opts)}, "t"); err != nil {
		t.Fatal(err)
	}
	evil := []struct {
		name string
		edit func(v map[string]any)
		want string
	}{
		{"host", func(v map[string]any) { v["host"] = "db.attacker.example" }, "host"},
		{"port", func(v map[string]any) { v["host"], v["port"] = "127.0.0.1", tr.port() }, "port"},
		{"dbname", func(v map[string]any) { v["dbname"] = "other" }, "dbname"},
		{"sslmode", func(v map[string]any) { v["sslmode"] = "prefer" }, "sslmode"},
	}
	for _, e := range evil {
		v := pg.value(blue, "blue-pw")
		e.edit(v)
		f.putJSON("db/app", v)
		st, err := f.engine.Rotate(context.Background(), "db/app", rotation.RotateOptions{})
		if err != nil || st.LastError == "" || !strings.Contains(st.LastError, "does not pin") || !strings.Contains(st.LastError, e.want) {
			t.Fatalf("rotation with another %s = %+v, %v; want refused", e.name, st, err)
		}
		if _, err := f.engine.Cancel(context.Background(), "db/app", "t"); err != nil && !errors.Is(err, rotation.ErrNotRotating) {
			t.Fatal(err)
		}
	}
	if err := pg.login(green, "green-unknown"); err != nil {
		t.Fatalf("the idle user's password changed on a refused rotation: %v", err)
	}

	// A pending value that names another server (had it been written
	// behind Coffer's back) is refused at Set and at Test: nothing is set,
	// nothing is sent.
	job := &rotation.Job{Name: "db/app", RotationID: "r1", Options: json.RawMessage(opts),
		Current: jsonValue(pg.value(blue, "blue-pw"), 1),
		Lookup: func(ctx context.Context, name string) (*secret.Value, error) {
			return f.secrets.Get(ctx, name, secret.Selector{})
		}}
	pend := pg.value(green, "stolen-if-sent")
	pend["host"], pend["port"] = "127.0.0.1", tr.port()
	job.Pending = jsonValue(pend, 2)
	if err := Postgres().Set(context.Background(), job); err == nil || !strings.Contains(err.Error(), "does not pin") {
		t.Fatalf("Set with a foreign pending value = %v", err)
	}
	if err := Postgres().Test(context.Background(), job, job.Pending); err == nil || strings.Contains(err.Error(), "stolen-if-sent") {
		t.Fatalf("Test with a foreign pending value = %v", err)
	}
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the foreign server received %d connections", n)
	}
	if err := pg.login(green, "green-unknown"); err != nil {
		t.Fatalf("the idle user's password changed: %v", err)
	}

	// The options may pin the database instead of the master secret's.
	pinned := fmt.Sprintf(`{"strategy":"alternating","master_secret":"db/admin","users":[%q,%q],"host":"127.0.0.1","port":%d}`, blue, green, tr.port())
	job.Options = json.RawMessage(pinned)
	if err := Postgres().Test(context.Background(), job, job.Current); err == nil || !strings.Contains(err.Error(), "port") {
		t.Fatalf("Test of a value off the pinned port = %v", err)
	}
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the foreign server received %d connections", n)
	}

	// The pinned database itself works.
	f.putJSON("db/app", pg.value(blue, "blue-pw"))
	f.rotate("db/app")
	if cur := f.current("db/app"); cur.Username != green || pg.login(green, cur.Password) != nil {
		t.Fatalf("rotation on the pinned database: current user %s does not log in", cur.Username)
	}
}

// TestPostgresSingleUserPinsTheDatabase: the single strategy logs in with
// the secret's own password, so the policy records the database of the
// value it was set with and refuses values that name another.
func TestPostgresSingleUserPinsTheDatabase(t *testing.T) {
	pg := newPG(t)
	f := newFixture(t)
	tr := newTrap(t)
	user := "app_" + randSuffix()
	pg.role(t, user, "real-pw")
	f.putJSON("db/single", pg.value(user, "real-pw"))
	out, err := f.engine.SetPolicy(context.Background(), "db/single", rotation.Policy{Rotator: "postgresql"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	json.Unmarshal(out.Options, &o)
	if o.Host != pg.host || int(o.Port) != pg.port || o.DBName != pg.db || o.SSLMode != "disable" {
		t.Fatalf("pinned options = %s", out.Options)
	}
	// The value keeps the real password but points at another server.
	v := pg.value(user, "real-pw")
	v["host"], v["port"] = "127.0.0.1", tr.port()
	f.putJSON("db/single", v)
	st, err := f.engine.Rotate(context.Background(), "db/single", rotation.RotateOptions{})
	if err != nil || !strings.Contains(st.LastError, "does not pin") || strings.Contains(st.LastError, "real-pw") {
		t.Fatalf("rotation of a value on another server = %+v, %v; want refused", st, err)
	}
	if _, err := f.engine.Cancel(context.Background(), "db/single", "t"); err != nil && !errors.Is(err, rotation.ErrNotRotating) {
		t.Fatal(err)
	}
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the foreign server received %d connections", n)
	}
	if err := pg.login(user, "real-pw"); err != nil {
		t.Fatalf("the password changed: %v", err)
	}

	// A policy stored before hosts were pinned logs in nowhere.
	job := &rotation.Job{Name: "db/single", Options: json.RawMessage(`{"strategy":"single"}`), Current: jsonValue(v, 1)}
	if err := Postgres().Test(context.Background(), job, job.Current); err == nil || !strings.Contains(err.Error(), "pins no database host") {
		t.Fatalf("Test under an unpinned policy = %v", err)
	}
	// A prefix policy (no current value) must name the host.
	var ve *secret.ValidationError
	if _, err := Postgres().Check(json.RawMessage(`{}`), nil, rotation.PolicyInfo{Name: "db/"}); !errors.As(err, &ve) || ve.Field != "options.host" {
		t.Fatalf("single prefix policy without a host = %v", err)
	}
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the foreign server received %d connections", n)
	}

	// Back on the pinned server, rotation works.
	f.putJSON("db/single", pg.value(user, "real-pw"))
	f.rotate("db/single")
	if err := pg.login(user, f.current("db/single").Password); err != nil {
		t.Fatalf("rotation on the pinned database: %v", err)
	}
}

// TestMySQLAlternatingPinsTheDatabase: as for PostgreSQL, a value naming
// another port is refused before the idle user's password changes.
func TestMySQLAlternatingPinsTheDatabase(t *testing.T) {
	my := newMy(t)
	f := newFixture(t)
	tr := newTrap(t)
	blue, green := "blue_"+randSuffix(), "green_"+randSuffix()
	my.user(t, blue, "blue-pw")
	my.user(t, green, "green-initial")
	f.putJSON("db/root", my.value("root", ""))
	f.putJSON("db/app", my.value(blue, "blue-pw"))
	opts := fmt.Sprintf(`{"strategy":"alternating","master_secret":"db/root","users":[%q,%q]}`, blue, green)
	if _, err := f.engine.SetPolicy(context.Background(), "db/app", rotation.Policy{Rotator: "mysql", Options: json.RawMessage(opts)}, "t"); err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(v map[string]any){
		func(v map[string]any) { v["host"], v["port"] = "127.0.0.1", tr.port() },
		func(v map[string]any) { v["tls"] = "skip-verify" },
	} {
		v := my.value(blue, "blue-pw")
		edit(v)
		f.putJSON("db/app", v)
		st, err := f.engine.Rotate(context.Background(), "db/app", rotation.RotateOptions{})
		if err != nil || !strings.Contains(st.LastError, "does not pin") {
			t.Fatalf("rotation of a value off the pinned database = %+v, %v; want refused", st, err)
		}
		if _, err := f.engine.Cancel(context.Background(), "db/app", "t"); err != nil && !errors.Is(err, rotation.ErrNotRotating) {
			t.Fatal(err)
		}
	}
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the foreign server received %d connections", n)
	}
	if err := my.login(green, "green-initial"); err != nil {
		t.Fatalf("the idle user's password changed: %v", err)
	}
}
