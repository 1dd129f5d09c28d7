package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// Defaults, read by the flags, `sigil dev` and the uploader alike.
const (
	// DefaultRetryMin is the first wait after a failed upload; it doubles
	// up to DefaultRetryMax.
	DefaultRetryMin = 2 * time.Second
	// DefaultRetryMax caps the wait between attempts while a target is down.
	DefaultRetryMax = 5 * time.Minute
	// DefaultUploadTimeout bounds one upload, so a hung target counts as a
	// failure rather than stalling the queue.
	DefaultUploadTimeout = time.Minute
)

// Config turns share backups on at a signer. The zero value leaves them off.
type Config struct {
	// RecipientsFile holds age recipients, one a line (age1... X25519, or
	// age1pq1... hybrid ML-KEM-768+X25519); # comments allowed.
	RecipientsFile string
	// Dir is a folder target. Exactly one of Dir and S3.Bucket is set.
	Dir string
	// S3 is a bucket target.
	S3 S3Config
	// RetryMin and RetryMax shape the backoff between failed uploads;
	// UploadTimeout bounds one upload. Zero takes the defaults.
	RetryMin, RetryMax, UploadTimeout time.Duration
}

// Enabled reports whether any backup setting is given.
func (c Config) Enabled() bool {
	return c.RecipientsFile != "" || c.Dir != "" || c.S3.Bucket != "" || c.S3.Prefix != "" || c.S3.Endpoint != ""
}

// Validate checks a configuration that is Enabled, naming the flag at fault.
func (c Config) Validate() error {
	switch {
	case c.RecipientsFile == "":
		return errors.New("--backup-recipients is required with --backup-dir or --backup-s3-bucket: the age recipients backups are encrypted to")
	case c.Dir == "" && c.S3.Bucket == "":
		return errors.New("--backup-recipients needs a target: --backup-dir or --backup-s3-bucket")
	case c.Dir != "" && c.S3.Bucket != "":
		return errors.New("--backup-dir and --backup-s3-bucket: choose one target")
	case c.S3.Bucket == "" && (c.S3.Prefix != "" || c.S3.Endpoint != ""):
		return errors.New("--backup-s3-prefix and --backup-s3-endpoint need --backup-s3-bucket")
	case c.RetryMin < 0 || c.RetryMax < 0 || c.UploadTimeout < 0:
		return errors.New("backup retry and timeout durations must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.UploadTimeout == 0 {
		c.UploadTimeout = DefaultUploadTimeout
	}
}

// LoadRecipients reads an age recipients file. It also returns a
// fingerprint of the set, so a change of recipients backs every share up
// again. age refuses to mix hybrid and X25519 recipients in one file (that
// would void the post-quantum protection); that is reported here, at start.
func LoadRecipients(path string) ([]age.Recipient, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("--backup-recipients: %w", err)
	}
	recs, err := age.ParseRecipients(bytes.NewReader(b))
	if err != nil {
		return nil, "", fmt.Errorf("--backup-recipients %s: %w", path, err)
	}
	w, err := age.Encrypt(io.Discard, recs...)
	if err != nil {
		return nil, "", fmt.Errorf("--backup-recipients %s: %w", path, err)
	}
	_ = w.Close()
	lines := make([]string, 0, len(recs))
	for _, r := range recs {
		if s, ok := r.(fmt.Stringer); ok {
			lines = append(lines, s.String())
		}
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return recs, hex.EncodeToString(sum[:8]), nil
}

// NewTarget builds the configured target.
func NewTarget(ctx context.Context, c Config) (Store, error) {
	if c.Dir != "" {
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("--backup-dir: %w", err)
		}
		return Dir{Root: c.Dir}, nil
	}
	t, err := NewS3(ctx, c.S3)
	if err != nil {
		return nil, fmt.Errorf("--backup-s3-bucket: %w", err)
	}
	return t, nil
}
