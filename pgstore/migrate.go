package pgstore

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.up.sql
var migrationFiles embed.FS

// migration is one versioned schema change, rendered for a schema and prefix.
type migration struct {
	version int
	name    string // file name, such as 0001_init.up.sql
	sql     string
}

// migrations returns the store's migrations in version order, rendered for c.
func (c *config) migrations() []migration {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic("pgstore: embedded migrations unreadable: " + err.Error())
	}
	r := strings.NewReplacer("{{schema}}", c.schema, "{{prefix}}", c.prefix)
	var out []migration
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			panic("pgstore: embedded migration without a version: " + e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			panic("pgstore: embedded migration unreadable: " + err.Error())
		}
		out = append(out, migration{version: v, name: e.Name(), sql: r.Replace(string(b))})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out
}

// Migrations returns the store's schema migrations, rendered for the schema and table
// prefix that opts select, as files named NNNN_name.up.sql at the root of the returned
// file system. Apply them in name order.
//
// Migrate applies them for you and records them in the "<prefix>migrations" table. If you
// run your own migration tool instead, feed it these files (for example, write them into
// its migrations directory when you upgrade this module) and do not call Migrate. Only the
// schema, table prefix and the options' validity matter here; an invalid option returns
// nil.
func Migrations(opts ...Option) fs.FS {
	c, err := newConfig(opts)
	if err != nil {
		return nil
	}
	m := memFS{}
	for _, mg := range c.migrations() {
		m[mg.name] = []byte(mg.sql)
	}
	return m
}

// Migrate creates or upgrades the store's schema and tables to the version this package
// needs. It is idempotent, and safe to call from several processes at once: they
// serialize on a PostgreSQL advisory lock, and each migration is applied once, in the same
// transaction as its record in the "<prefix>migrations" table. Call it at startup, before
// Senders use the store; the connection's role needs CREATE on the schema (and on the
// database when the schema does not exist yet).
func (s *Store) Migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey()); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.cfg.schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+quote(s.cfg.schema)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.migrationsTable+` (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, "SELECT version FROM "+s.migrationsTable)
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, m := range s.cfg.migrations() {
			if slices.Contains(applied, int32(m.version)) {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("applying %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+s.migrationsTable+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: migrating schema %q: %w", s.cfg.schema, err)
	}
	return nil
}

// lockKey is the advisory lock serializing migrations of this schema and prefix.
func (s *Store) lockKey() int64 {
	h := fnv.New64a()
	io.WriteString(h, "hooksmith/pgstore migrate "+s.cfg.schema+"."+s.cfg.prefix)
	return int64(h.Sum64())
}

// memFS is a read-only in-memory file system of files at its root.
type memFS map[string][]byte

func (m memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &memDir{entries: m.entries()}, nil
	}
	b, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{info: memInfo{name: name, size: int64(len(b))}, r: bytes.NewReader(b)}, nil
}

func (m memFS) entries() []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(m))
	for name, b := range m {
		out = append(out, fs.FileInfoToDirEntry(memInfo{name: name, size: int64(len(b))}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type memFile struct {
	info memInfo
	r    *bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *memFile) Close() error               { return nil }

type memDir struct {
	entries []fs.DirEntry
	off     int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{name: ".", dir: true}, nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: fs.ErrInvalid}
}
func (d *memDir) Close() error { return nil }
func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return rest, nil
}
