// Package embedded starts an in-process FerretDB (SQLite backend) that speaks
// the MongoDB wire protocol, for the default development setup and for tests.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Store is a running embedded FerretDB instance.
type Store struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
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
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: start: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Store{cancel: cancel, done: make(chan struct{})}
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
}
