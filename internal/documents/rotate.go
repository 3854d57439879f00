package documents

import (
	"context"

	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/store"
)

// RotateKeys re-wraps every document's data key, and the store's PHI field
// key, under kr's primary master key. kr must also hold the master keys the
// data keys are wrapped under now (a key file with the new key first and
// the old one after); once it has run, the old key can go. Neither
// documents nor fields are re-encrypted. It returns how many keys moved.
func RotateKeys(ctx context.Context, st *store.Store, kr *keys.Keyring) (int, error) {
	n, err := st.RewrapFieldKeys(ctx, kr)
	if err != nil {
		return 0, err
	}
	m, err := st.RewrapDocumentKeys(ctx, func(keyID string, wrapped []byte) (string, []byte, bool, error) {
		w, changed, err := kr.Rewrap(keys.Wrapped{KeyID: keyID, Key: wrapped})
		if err != nil {
			return "", nil, false, err
		}
		return w.KeyID, w.Key, changed, nil
	})
	return n + m, err
}
