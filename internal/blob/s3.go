package blob

import (
	"context"
	"errors"
)

// S3Options configure an S3-compatible store.
type S3Options struct {
	Bucket string
	Prefix string
}

// NewS3 is not available in this build yet.
func NewS3(_ context.Context, _ S3Options) (Store, error) {
	return nil, errors.New("blob: s3:// is not supported yet")
}
