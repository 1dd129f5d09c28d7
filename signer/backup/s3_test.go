package backup_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sigil-wallet/sigil/internal/s3test"
	"github.com/sigil-wallet/sigil/signer/backup"
)

// TestS3Target stores and reads backups on a real S3 server (versitygw over
// a temporary folder), path-style, with credentials from the environment.
func TestS3Target(t *testing.T) {
	srv := s3test.Start(t, "recovery")
	s3test.SetCredentials(t)
	ctx := context.Background()
	s, err := backup.NewS3(ctx, backup.S3Config{Bucket: "recovery", Prefix: "/sigil/prod/", Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	name := backup.Name("wal_a", "signer-1")
	if got := s.Location(name); got != "s3://recovery/sigil/prod/wal_a/signer-1.age" {
		t.Fatalf("location %s", got)
	}
	for _, data := range [][]byte{[]byte("first"), []byte("second, replacing the first")} {
		if err := s.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, backup.Name("wal_b", "signer-2"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	// The object is where the layout says, in the server's own folder.
	onDisk, err := os.ReadFile(filepath.Join(srv.Root, "recovery", "sigil", "prod", "wal_a", "signer-1.age"))
	if err != nil || string(onDisk) != "second, replacing the first" {
		t.Fatalf("object on disk: %q %v", onDisk, err)
	}
	names, err := s.List(ctx)
	if err != nil || !slices.Equal(names, []string{"wal_a/signer-1.age", "wal_b/signer-2.age"}) {
		t.Fatalf("list: %v %v", names, err)
	}
	got, err := s.Get(ctx, name)
	if err != nil || !bytes.Equal(got, onDisk) {
		t.Fatalf("get: %q %v", got, err)
	}

	srv.Stop()
	if err := s.Put(ctx, name, []byte("x")); err == nil {
		t.Fatal("a put to a stopped server succeeded")
	}
	srv.Restart()
	if err := s.Put(ctx, name, []byte("back")); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestS3TargetWrongBucket(t *testing.T) {
	srv := s3test.Start(t, "recovery")
	s3test.SetCredentials(t)
	s, err := backup.NewS3(context.Background(), backup.S3Config{Bucket: "absent", Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Put(context.Background(), backup.Name("wal_a", "signer-1"), []byte("x"))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("NoSuchBucket")) {
		t.Fatalf("put to a missing bucket: %v", err)
	}
}
