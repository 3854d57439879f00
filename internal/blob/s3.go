package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultPartSize is the size of one part of a multipart upload: S3's
// smallest allowed part, so an upload holds at most this much in memory.
const DefaultPartSize = 5 << 20

// S3Options configure an S3-compatible store.
type S3Options struct {
	Bucket string
	// Prefix is put before every key ("docs" keeps key k at "docs/k").
	Prefix string
	// Endpoint is the store's base URL (AWS_ENDPOINT_URL_S3); empty means
	// AWS itself, found from Region.
	Endpoint string
	// Region is the bucket's region (AWS_REGION; default us-east-1).
	Region string
	// AccessKeyID and SecretAccessKey are static credentials
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), SessionToken optional.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// rather than as a host name, as most S3-compatible stores want.
	PathStyle bool
	// PartSize overrides DefaultPartSize (never below it: S3 refuses
	// smaller parts but the last).
	PartSize int
}

// S3 keeps each blob as an object in one bucket, under a prefix.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int
}

// NewS3 returns a store on the bucket o names. It does not call the store:
// a bucket that is missing or refuses the credentials fails the first Put.
func NewS3(_ context.Context, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("blob: an S3 store needs a bucket")
	}
	if o.AccessKeyID == "" || o.SecretAccessKey == "" {
		return nil, errors.New("blob: an S3 store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, o.SessionToken),
		// Checksums only where the API requires them: many S3-compatible
		// stores do not speak the newer trailing-checksum encoding, and
		// every blob is authenticated by its own encryption anyway.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
	})
	part := max(o.PartSize, DefaultPartSize)
	return &S3{client: client, bucket: o.Bucket, prefix: o.Prefix, partSize: part}, nil
}

func (s *S3) object(key string) *string {
	if s.prefix == "" {
		return aws.String(key)
	}
	return aws.String(path.Join(s.prefix, key))
}

// Put streams r into the object: a body that fits in one part is one
// PutObject, a longer one a multipart upload, part by part, so at most one
// part is held in memory. A failed upload is aborted, leaving nothing.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	r = ctxReader{ctx: ctx, r: r}
	buf := make([]byte, s.partSize)
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: s.object(key),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return fmt.Errorf("blob: s3 put: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return s.putMultipart(ctx, key, r, buf)
}

// putMultipart uploads buf (a full first part) and the rest of r.
func (s *S3) putMultipart(ctx context.Context, key string, r io.Reader, buf []byte) (err error) {
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.bucket), Key: s.object(key)})
	if err != nil {
		return fmt.Errorf("blob: s3 create multipart upload: %w", err)
	}
	defer func() {
		if err != nil {
			// The context may be why it failed: abort on one of our own.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultAbortTimeout)
			defer cancel()
			_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.bucket), Key: s.object(key), UploadId: up.UploadId,
			})
		}
	}()
	var parts []types.CompletedPart
	n := len(buf)
	for num := int32(1); n > 0; num++ {
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(s.bucket), Key: s.object(key), UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return fmt.Errorf("blob: s3 upload part: %w", err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		var rerr error
		n, rerr = io.ReadFull(r, buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return rerr
		}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: s.object(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("blob: s3 complete multipart upload: %w", err)
	}
	return nil
}

// DefaultAbortTimeout bounds the abort of a failed multipart upload.
const DefaultAbortTimeout = 10 * time.Second

// Get opens the object; its body streams from the store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: s.object(key)})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("blob: s3 get: %w", err)
	}
	return out.Body, nil
}

// Delete removes the object; S3 answers a missing one as deleted.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: s.object(key)}); err != nil {
		return fmt.Errorf("blob: s3 delete: %w", err)
	}
	return nil
}
