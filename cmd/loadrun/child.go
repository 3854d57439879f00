package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/secondopinion/gateway/internal/app"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/store"
)

// serveChild runs the gateway or the baseline against the parent's store
// until SIGTERM, printing "loadrun-listening <addr>" once it serves.
func serveChild(name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	uri, secret := os.Getenv("LOADRUN_MONGODB_URI"), os.Getenv("LOADRUN_SECRET")
	ready := func(addr string) { fmt.Println("loadrun-listening " + addr) }
	if dir := os.Getenv("LOADRUN_CPUPROFILE_DIR"); dir != "" {
		// A CPU profile of this child for the whole run, to see where the
		// gateway's own time goes (go tool pprof <dir>/<name>.pprof).
		f, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	switch name {
	case "gateway":
		// The real thing, configured as an operator would: only the rate
		// limits are lifted, since one token drives all the load.
		env := map[string]string{
			"ADDR": "127.0.0.1:0", "MONGODB_URI": uri, "MONGODB_DATABASE": database,
			"JWT_HS256_SECRET": secret, "SEED_DEMO": "false", "LOG_LEVEL": "error", "REQUEST_TIMEOUT": "2m",
			"RATE_LIMIT_PER_ADDRESS": "1000000", "RATE_LIMIT_PER_PRINCIPAL": "1000000",
			"DATA_KEY_FILE": os.Getenv("LOADRUN_DATA_KEY_FILE"),
		}
		return app.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, os.Stderr, ready)
	case "baseline":
		kr, err := keys.Load(os.Getenv("LOADRUN_DATA_KEY_FILE"))
		if err != nil {
			return err
		}
		st, err := store.Open(ctx, store.Options{URI: uri, Database: database, OpTimeout: 2 * time.Minute, Keys: kr})
		if err != nil {
			return err
		}
		defer func() { _ = st.Close(context.Background()) }()
		v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: []byte(secret)}}, AllowHS256: true,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: baseline(st, v), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		ready(ln.Addr().String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	default:
		return fmt.Errorf("-serve %q: want gateway or baseline", name)
	}
}
