// Package pgtest gives tests a fresh PostgreSQL database each.
//
// # Where the server comes from
//
// When HOOKSMITH_TEST_DATABASE_URL is set, databases are created on that server (the URL
// must name a role allowed to CREATE DATABASE; its database part is only used to connect).
// Otherwise the first call to URL starts a throwaway cluster from the PostgreSQL binaries
// on this machine (initdb and postgres, found on PATH or under /usr/lib/postgresql/*/bin)
// in a temporary directory, listening on a free loopback port, durability off for speed.
// It is started once per test binary and stopped by Main when the tests finish; when run
// as root it runs as the postgres user (or nobody), because PostgreSQL refuses root.
//
// Without binaries the test is skipped with instructions, except when CI=true: then it
// fails, so a CI job can never pass by skipping the database tests.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and call URL in each test that needs a database.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points the tests at an existing server.
const EnvURL = "HOOKSMITH_TEST_DATABASE_URL"

// startTimeout bounds initdb plus the server becoming ready.
const startTimeout = 60 * time.Second

var (
	once    sync.Once
	server  string // admin URL of the server, "" when unavailable
	srvErr  error  // why there is no server
	skip    bool   // srvErr means "not installed" rather than "broken"
	cluster *localCluster
)

// Main runs the tests, stops the cluster URL may have started, and exits with the tests'
// status. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain that checks more afterwards (goleak, which
// would otherwise see the cluster's watcher goroutine): it runs the tests, stops the
// cluster and returns the tests' status.
func Run(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop stops the cluster started by URL, if any, and removes its files. Safe to call more
// than once.
func Stop() {
	if cluster != nil {
		cluster.stop()
		cluster = nil
	}
}

// URL returns a connection URL for a new, empty database that is dropped when t ends. It
// skips t when no server is available (fails it under CI=true) and fails t when the
// server cannot be reached. Safe for concurrent use.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(findServer)
	if srvErr != nil {
		if skip && os.Getenv("CI") != "true" {
			t.Skipf("pgtest: PostgreSQL is not available, so this test is skipped: %v\n"+
				"\tinstall it (Debian/Ubuntu: apt-get install postgresql) or set %s=postgres://user@host:port/db",
				srvErr, EnvURL)
		}
		t.Fatalf("pgtest: no PostgreSQL server for the tests: %v", srvErr)
	}
	name := "hooksmith_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: parsing the server URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func findServer() {
	if u := os.Getenv(EnvURL); u != "" {
		server = u
		return
	}
	bin, err := findBinaries()
	if err != nil {
		srvErr, skip = err, true
		return
	}
	c, err := startCluster(bin)
	if err != nil {
		srvErr = fmt.Errorf("starting a throwaway cluster with %s: %w", bin, err)
		return
	}
	cluster, server = c, c.url
}

// findBinaries returns the directory holding initdb and postgres.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb not found on PATH or under /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

type localCluster struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	url  string
	port int
}

func startCluster(bin string) (*localCluster, error) {
	dir, err := os.MkdirTemp("", "hooksmith-pg-")
	if err != nil {
		return nil, err
	}
	cred, err := credential(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	var lastErr error
	for range 3 { // the free port may be taken between finding and binding it
		c, err := startServer(bin, dir, data, cred, 0, fastSettings)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// credential returns who the server runs as: nil (this user) unless running as root,
// when dir is handed to the postgres user (or nobody).
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres or nobody user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// fastSettings are the shared cluster's: durability off, for speed.
var fastSettings = []string{"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	"-c", "max_connections=300", "-c", "shared_buffers=128MB"}

// startServer starts postgres on data, on port (a free one if 0), with settings.
func startServer(bin, dir, data string, cred *syscall.Credential, port int, settings []string) (*localCluster, error) {
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := append([]string{"-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1"}, settings...)
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	// Pdeathsig stops the server even if the test binary is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &localCluster{dir: dir, cmd: cmd, done: make(chan struct{}), port: port,
		url: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	go func() { cmd.Wait(); close(c.done) }()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.Connect(ctx, c.url)
		if err == nil {
			conn.Close(ctx)
			return c, nil
		}
		select {
		case <-c.done:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return nil, fmt.Errorf("postgres exited: %s", tail(string(log), 2000))
		case <-ctx.Done():
			c.kill()
			return nil, fmt.Errorf("postgres not ready after %s: %w", startTimeout, err)
		case <-tick.C:
		}
	}
}

// stop shuts the server down (fast mode) and removes its files.
func (c *localCluster) stop() {
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.kill()
	}
	os.RemoveAll(c.dir)
}

func (c *localCluster) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// Cluster is a PostgreSQL server of one test's own, durable unless its settings say
// otherwise, that the test can kill and start again on the same files.
type Cluster struct {
	t        testing.TB
	bin, dir string
	cred     *syscall.Credential
	settings []string
	cur      *localCluster
}

// Dedicated starts a cluster for t alone from this machine's binaries, with fsync,
// full_page_writes and synchronous_commit on and then settings ("-c", "name=value"
// pairs) applied, and removes it when t ends. It skips t without binaries (fails it
// under CI=true).
func Dedicated(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	bin, err := findBinaries()
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("pgtest: PostgreSQL binaries are not installed, so this test is skipped: %v", err)
		}
		t.Fatalf("pgtest: no PostgreSQL binaries for a dedicated cluster: %v", err)
	}
	dir, err := os.MkdirTemp("", "hooksmith-pg-")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := credential(dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	c := &Cluster{t: t, bin: bin, dir: dir, cred: cred,
		settings: append([]string{"-c", "fsync=on", "-c", "full_page_writes=on", "-c", "synchronous_commit=on",
			"-c", "max_connections=50"}, settings...)}
	t.Cleanup(func() {
		if c.cur != nil {
			c.cur.kill()
		}
		os.RemoveAll(dir)
	})
	c.Start()
	return c
}

// URL is the cluster's postgres database.
func (c *Cluster) URL() string { return c.cur.url }

// Start starts the server again after Kill, on the same files and port, and waits until
// it accepts connections (after its crash recovery).
func (c *Cluster) Start() {
	c.t.Helper()
	port := 0
	if c.cur != nil {
		port = c.cur.port
	}
	cur, err := startServer(c.bin, c.dir, filepath.Join(c.dir, "data"), c.cred, port, c.settings)
	if err != nil {
		c.t.Fatalf("pgtest: starting the dedicated cluster: %v", err)
	}
	c.cur = cur
}

// Kill sends SIGKILL to the server and every one of its processes at once, as a
// machine losing power would stop them: nothing is flushed on the way out.
func (c *Cluster) Kill() {
	syscall.Kill(-c.cur.cmd.Process.Pid, syscall.SIGKILL)
	<-c.cur.done
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
