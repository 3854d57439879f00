// Command rotate-keys re-wraps every document's data key under a new master
// key, without re-encrypting any document.
//
//	rotate-keys -new new-key.txt            # DATA_KEY_FILE holds the current key
//	rotate-keys -new new-key.txt -generate  # writes a fresh key to new-key.txt first
//
// It reads the database from MONGODB_URI / MONGODB_DATABASE (or the
// embedded store under DATA_DIR, with the gateway stopped: the embedded
// store has one writer), unwraps each data key with the current key(s) of
// DATA_KEY_FILE and wraps it under the new key. When it has finished, point
// DATA_KEY_FILE at the new key file (keep the old one until then: a key file
// may list the new key first and the old one after, which serves both) and
// restart the gateway. Running it again is harmless: keys already under the
// new key are left as they are.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/secondopinion/gateway/internal/config"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/embedded"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "rotate-keys:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("rotate-keys", flag.ContinueOnError)
	newPath := fs.String("new", "", "file holding the new master key (first key of the file)")
	generate := fs.Bool("generate", false, "write a fresh key to -new first (refuses to overwrite)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *newPath == "" {
		return errors.New("-new is required")
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	oldPath := cfg.DataKeyFile
	if oldPath == "" {
		oldPath = filepath.Join(cfg.DataDir, config.DevDataKeyFile)
	}
	if *generate {
		text, err := keys.Generate()
		if err != nil {
			return err
		}
		f, err := os.OpenFile(*newPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(text); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	oldText, err := os.ReadFile(oldPath)
	if err != nil {
		return fmt.Errorf("read the current key (DATA_KEY_FILE): %w", err)
	}
	newText, err := os.ReadFile(*newPath)
	if err != nil {
		return fmt.Errorf("read the new key: %w", err)
	}
	// The new key first (it wraps), the old ones after (they unwrap).
	kr, err := keys.Parse(strings.NewReader(string(newText) + "\n" + string(oldText)))
	if err != nil {
		return err
	}
	uri := cfg.MongoURI
	var prepare func(context.Context, string) error
	if uri == "" {
		emb, err := embedded.Start(ctx, embedded.Options{DataDir: cfg.DataDir})
		if err != nil {
			return err
		}
		defer emb.Stop()
		uri, prepare = emb.URI(), emb.IndexIDs
	}
	st, err := store.Open(ctx, store.Options{URI: uri, Database: cfg.MongoDatabase, OpTimeout: cfg.RequestTimeout, Prepare: prepare, Keys: kr})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.Background()) }()
	n, err := documents.RotateKeys(ctx, st, kr)
	if err != nil {
		return fmt.Errorf("after %d keys: %w", n, err)
	}
	fmt.Printf("re-wrapped %d data keys (documents' and the PHI field key) under key %s; now set DATA_KEY_FILE=%s and restart\n", n, kr.PrimaryID(), *newPath)
	return nil
}
