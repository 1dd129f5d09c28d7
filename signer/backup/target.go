package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Target is where backups are stored. Names are "<wallet id>/<signer>.age";
// the target adds its own prefix.
type Target interface {
	// Put stores data under name, replacing what was there: storing the
	// same share again is harmless, so an upload may be retried freely.
	Put(ctx context.Context, name string, data []byte) error
	// Location names where name is stored, for operators
	// (e.g. s3://bucket/prefix/wal_x/signer-1.age).
	Location(name string) string
}

// Store is a target that can also be read back.
type Store interface {
	Target
	Reader
}

// Reader reads backups back, for recovery.
type Reader interface {
	// List returns the names of every backup file below the target's root,
	// sorted.
	List(ctx context.Context) ([]string, error)
	// Get reads one backup file (at most 4 MiB).
	Get(ctx context.Context, name string) ([]byte, error)
}

// Dir is a target in a local folder (or a mounted share).
type Dir struct{ Root string }

var _ Store = Dir{}

// Put writes the file through a temporary name and renames it into place,
// synced, so a reader never sees half a backup.
func (d Dir) Put(_ context.Context, name string, data []byte) error {
	p := filepath.Join(d.Root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	if dir, err := os.Open(filepath.Dir(p)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}

// Location is the file's path.
func (d Dir) Location(name string) string { return filepath.Join(d.Root, filepath.FromSlash(name)) }

// List walks the folder for .age files.
func (d Dir) List(_ context.Context) ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(p, Ext) {
			rel, err := filepath.Rel(d.Root, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// Get reads one file.
func (d Dir) Get(_ context.Context, name string) ([]byte, error) {
	return readLimited(filepath.Join(d.Root, filepath.FromSlash(name)))
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a share backup", p, maxFile)
	}
	return b, nil
}

// Files reads individual files given by path.
type Files []string

// List returns the paths.
func (f Files) List(context.Context) ([]string, error) { return slices.Sorted(slices.Values(f)), nil }

// Get reads one path.
func (f Files) Get(_ context.Context, name string) ([]byte, error) { return readLimited(name) }

// ErrNoBackups reports a location holding no backup file.
var ErrNoBackups = errors.New("no backup files (*.age) found")
