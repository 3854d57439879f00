package documents

import (
	"context"
	"crypto/sha256"
	"io"

	"github.com/secondopinion/gateway/internal/keys"
)

// EncryptAndStore is the file's road alone (hash, encrypt, store under a
// new data key; no detection and no case write), for the benchmark that
// tells it apart from the whole upload.
func (s *Service) EncryptAndStore(ctx context.Context, key string, src io.Reader) (int64, error) {
	dk, err := keys.NewDataKey()
	if err != nil {
		return 0, err
	}
	return s.put(ctx, key, dk, src, sha256.New(), nil)
}
