// Package embedded starts an in-process FerretDB (SQLite backend) that speaks
// the MongoDB wire protocol, for the default development setup and for tests.
package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	// The SQLite driver FerretDB itself registers; named here because
	// IndexIDs opens the same files.
	_ "modernc.org/sqlite"
)

// Store is a running embedded FerretDB instance.
type Store struct {
	uri    string
	dir    string
	lock   *os.File
	cancel context.CancelFunc
	done   chan struct{}
}

// ErrLocked: another process (or another Start in this one) has the data
// directory open. The embedded store has exactly one writer, since FerretDB
// does not apply a filtered write atomically and only the writing process
// serialises its writes; gateway replicas need MongoDB.
var ErrLocked = errors.New("embedded: the data directory is in use by another gateway process; the embedded store has one writer (run replicas on MongoDB with MONGODB_URI)")

// lockDir takes an exclusive, non-blocking lock on dir's LOCK file. The
// kernel drops it when the process dies, so a crash never leaves it held.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, dir)
		}
		return nil, fmt.Errorf("embedded: lock: %w", err)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

// Options configure Start.
type Options struct {
	// DataDir holds the SQLite files; it is created when missing.
	DataDir string
	// Addr is the loopback TCP address to listen on; "127.0.0.1:0" picks a free port.
	Addr string
	// Logger receives FerretDB's own logs. FerretDB logs every refused command
	// with the whole wire message at WARN, which may hold PHI, so the default
	// discards everything below ERROR.
	Logger *slog.Logger
}

// Start launches FerretDB and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (*Store, error) {
	if opts.DataDir == "" {
		return nil, errors.New("embedded: DataDir is required")
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded: data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	handler := slog.Handler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if opts.Logger != nil {
		handler = opts.Logger.Handler()
	}
	logger := slog.New(lazy(handler))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    logger,
	})
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("embedded: start: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Store{dir: dir, lock: lock, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(runCtx)
	}()
	// MongoDBURI blocks until the listener is bound.
	uriCh := make(chan string, 1)
	go func() { uriCh <- f.MongoDBURI() }()
	select {
	case s.uri = <-uriCh:
	case <-ctx.Done():
		cancel()
		<-s.done
		_ = lock.Close()
		return nil, fmt.Errorf("embedded: start: %w", ctx.Err())
	}
	if err := waitDial(ctx, s.uri); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func waitDial(ctx context.Context, uri string) error {
	host := uri[len("mongodb://"):]
	if i := len(host) - 1; i >= 0 && host[i] == '/' {
		host = host[:i]
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("embedded: not reachable: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URI is the mongodb:// connection string of the running instance.
func (s *Store) URI() string { return s.uri }

// Stop shuts the instance down and waits for it to finish.
func (s *Store) Stop() {
	s.cancel()
	<-s.done
	_ = s.lock.Close() // releases the lock
}

// idLookupIndex names the index IndexIDs adds to each collection's table.
// FerretDB names its own indexes "<table>_<index name>", and the store's
// index names are made of key fields, so the two never collide.
const idLookupIndex = "_gw$id_lookup"

// IndexIDs makes reads by exactly {_id: X} use an index in database's SQLite
// file.
//
// FerretDB's SQLite backend turns such a filter into
// `WHERE _ferretdb_sjson->'$._id' = ?`, but builds its unique _id index on
// `_ferretdb_sjson->"_id"`: a different expression, so SQLite scans the whole
// table for every read by _id (measured: 2.6 ms at 2,000 small documents,
// 0.27 ms with this index). IndexIDs adds, to every collection table that
// exists, a plain (non-unique: FerretDB's own index keeps enforcing
// uniqueness) index on the exact expression FerretDB queries. FerretDB's
// metadata does not list it; dropping a collection drops it with the table.
// Run it after the collections exist; it is idempotent.
func (s *Store) IndexIDs(ctx context.Context, database string) error {
	file := filepath.Join(s.dir, database+".sqlite")
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("embedded: index ids: %w", err)
	}
	// In an SQLite URI, '%', '?' and '#' in the path must be escaped.
	path := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(file)
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("embedded: index ids: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return fmt.Errorf("embedded: index ids: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			_ = rows.Close()
			return fmt.Errorf("embedded: index ids: %w", err)
		}
		tables = append(tables, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("embedded: index ids: %w", err)
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+idLookupIndex, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("embedded: index ids on %s: %w", t, err)
		}
	}
	return nil
}

// GCPercent is the garbage collector's target for a process hosting the
// embedded store. FerretDB decodes every document of a collection for any
// filter but exactly {_id: X}, so a page of cases allocates tens of MiB that
// die at once; at Go's default of 100 the store spent a quarter of its CPU
// collecting, and 16 clients paging cases got 0.8-1.7 pages/s; at 400 they
// got 2.8-3.7 (go run ./cmd/loadrun -ops list). Memory stays bounded because
// the store admits only a few whole-collection reads at once: the store
// process peaked at 454 MiB under that load, as at the default.
const GCPercent = 400

// TuneGC sets GCPercent for this process unless GOGC is set in its
// environment (the runtime has applied that already), and returns what
// restores the previous setting.
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	prev := debug.SetGCPercent(GCPercent)
	return func() { debug.SetGCPercent(prev) }
}
