package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Config selects a bucket. Credentials and, unless Region is set, the
// region come from the usual AWS sources (AWS_* environment variables,
// ~/.aws/config and credentials, an instance role).
type S3Config struct {
	Bucket string
	// Prefix is prepended to every name (no leading or trailing slash
	// needed).
	Prefix string
	// Endpoint is an S3-compatible server's URL (MinIO, versitygw, Ceph...);
	// with it, requests use path-style addressing. Empty: AWS S3.
	Endpoint string
	// Region overrides the configured region (default us-east-1 when none
	// is configured anywhere).
	Region string
}

// S3 is a bucket target.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string
}

var _ Store = (*S3)(nil)

// NewS3 builds an S3 client; it does not contact the server.
func NewS3(ctx context.Context, c S3Config) (*S3, error) {
	if c.Bucket == "" {
		return nil, errors.New("no bucket")
	}
	opts := []func(*config.LoadOptions) error{}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
			o.UsePathStyle = true
		}
		// S3-compatible servers differ in their support of the newer
		// default checksums; ask for them only where S3 requires them.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// The uploader retries with its own backoff and reports failing in
		// between: one SDK attempt per try keeps that report timely.
		o.RetryMaxAttempts = 1
	})
	return &S3{client: client, bucket: c.Bucket, prefix: strings.Trim(c.Prefix, "/")}, nil
}

func (s *S3) key(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "/" + name
}

// Put uploads one object.
func (s *S3) Put(ctx context.Context, name string, data []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(s.key(name)),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentType: aws.String("application/octet-stream"),
	})
	return err
}

// Location is the object's s3:// URL.
func (s *S3) Location(name string) string { return "s3://" + s.bucket + "/" + s.key(name) }

// List lists the .age objects below the prefix.
func (s *S3) List(ctx context.Context) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)}
	if s.prefix != "" {
		in.Prefix = aws.String(s.prefix + "/")
	}
	var out []string
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if strings.HasSuffix(k, Ext) {
				out = append(out, strings.TrimPrefix(k, aws.ToString(in.Prefix)))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Get downloads one object.
func (s *S3) Get(ctx context.Context, name string) ([]byte, error) {
	res, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(name))})
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a share backup", s.Location(name), maxFile)
	}
	return b, nil
}

// ParseS3URL splits s3://bucket/prefix.
func ParseS3URL(raw string) (S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return S3Config{}, fmt.Errorf("%q is not an s3://bucket/prefix URL", raw)
	}
	return S3Config{Bucket: u.Host, Prefix: strings.Trim(path.Clean("/"+u.Path), "/")}, nil
}
