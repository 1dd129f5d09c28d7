// Package journal is the tamper-evident decision journal of a signer or an
// HSM driver, kept in the node's own database: one append-only record per
// decision on a signature request (signed, or refused and why), each
// chained to the one before by a SHA-256 hash, written durably before the
// node releases its part of a signature. Verify recomputes the chain and
// names the first record that was altered, inserted or removed. (Cutting
// records off the end leaves a shorter valid chain: keep a copy of the
// latest hash elsewhere, e.g. in the node's logs, to detect that.)
//
// The journal also answers the replay question: has this wallet already
// signed this request id for another signature request?
package journal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

//go:embed migrations
var migrations embed.FS

// Decision is what a node decided about a signature request.
type Decision string

// Decisions.
const (
	// Signed: every check passed; the node goes on to sign.
	Signed Decision = "signed"
	// RefusedSignature: the request signature is missing, malformed,
	// untrusted, expired, does not match, or is a replay.
	RefusedSignature Decision = "refused-signature"
	// RefusedPolicy: the request itself is unacceptable (the digest does
	// not match the payload, an unknown kind).
	RefusedPolicy Decision = "refused-policy"
	// RefusedGate: the validation gate said no.
	RefusedGate Decision = "refused-gate"
	// GateFailed: the validation gate could not be asked (down, slow, bad
	// answer): nothing signed.
	GateFailed Decision = "gate-failed"
)

// ErrReplay reports a request id this wallet already signed for another
// signature request.
var ErrReplay = errors.New("replayed request: this wallet already signed this request id for another signature request")

// Entry is one journal record.
type Entry struct {
	Seq          int64     `json:"seq"`
	At           time.Time `json:"time"`
	Node         string    `json:"node"`
	Decision     Decision  `json:"decision"`
	Reason       string    `json:"reason,omitempty"`
	WorkID       string    `json:"work_id"`
	SignatureID  string    `json:"signature_id"`
	RequestID    string    `json:"request_id,omitempty"`
	WalletID     string    `json:"wallet_id"`
	Digest       string    `json:"digest"`
	RequesterKey string    `json:"requester_key,omitempty"`
	PrevHash     string    `json:"prev_hash"`
	Hash         string    `json:"hash"`
}

// genesis is the prev_hash of the first record.
var genesis = hex.EncodeToString(make([]byte, 32))

// hash is the record's hash over its fields and the previous hash, each
// length-prefixed so that no two records hash alike.
func (e *Entry) hash() string {
	h := sha256.New()
	var n [4]byte
	for _, f := range []string{"sigil/journal/v1", strconv.FormatInt(e.Seq, 10), strconv.FormatInt(e.At.UnixMicro(), 10),
		e.Node, string(e.Decision), e.Reason, e.WorkID, e.SignatureID, e.RequestID, e.WalletID, e.Digest, e.RequesterKey, e.PrevHash} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Journal is a node's journal.
type Journal struct {
	db  *db.DB
	now func() time.Time

	// Group commit: appends that arrive while another batch is being
	// written wait in queue and go together in the next transaction.
	mu      sync.Mutex
	queue   []*pending
	writing bool

	// tail is the last record as this journal last wrote or read it, nil
	// when unknown. Only the one writer of the moment (writing) uses it.
	tail *row
	// quick counts batches written by the one-statement path, raced those
	// it lost to another writer (tests).
	quick, raced atomic.Int64

	beforeWrite func() // tests: called before each batch is written
}

// pending is one Append waiting for its batch.
type pending struct {
	e    Entry
	out  Entry
	err  error
	done chan struct{}
}

// Open migrates the journal's table in d (its own goose table, so it lives
// beside the node's other tables) and returns the journal. Open d with
// Durable set: a record must be on disk before the node signs.
func Open(ctx context.Context, d *db.DB) (*Journal, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := d.Migrate(ctx, sub, "goose_journal"); err != nil {
		return nil, fmt.Errorf("migrate the journal: %w", err)
	}
	return &Journal{db: d, now: time.Now}, nil
}

// SetClock replaces the journal's clock (tests).
func (j *Journal) SetClock(now func() time.Time) { j.now = now }

const columns = `seq, at, node, decision, reason, work_id, signature_id, request_id, wallet_id, digest, requester_key, prev_hash, hash`

type row struct {
	Seq          int64  `db:"seq"`
	At           int64  `db:"at"`
	Node         string `db:"node"`
	Decision     string `db:"decision"`
	Reason       string `db:"reason"`
	WorkID       string `db:"work_id"`
	SignatureID  string `db:"signature_id"`
	RequestID    string `db:"request_id"`
	WalletID     string `db:"wallet_id"`
	Digest       string `db:"digest"`
	RequesterKey string `db:"requester_key"`
	PrevHash     string `db:"prev_hash"`
	Hash         string `db:"hash"`
}

func (r *row) entry() Entry {
	return Entry{Seq: r.Seq, At: time.UnixMicro(r.At).UTC(), Node: r.Node, Decision: Decision(r.Decision), Reason: r.Reason,
		WorkID: r.WorkID, SignatureID: r.SignatureID, RequestID: r.RequestID, WalletID: r.WalletID, Digest: r.Digest,
		RequesterKey: r.RequesterKey, PrevHash: r.PrevHash, Hash: r.Hash}
}

// Append writes e as the next record, durably, and returns it with its
// sequence number and hashes. For a Signed record with a request id it
// first checks, in the same transaction, that the wallet has not signed
// that request id for another signature request: then it writes nothing
// and returns ErrReplay (the caller journals the refusal).
//
// Appends are committed in groups: while one transaction is being written,
// the appends that arrive queue up, and the next transaction writes them
// all (up to maxBatch), in arrival order, with one commit. Each still
// returns only once its own record is durable. A node deciding many
// requests at once (an HSM driver under load) thus pays one durable commit
// per group, not per decision.
func (j *Journal) Append(ctx context.Context, e Entry) (Entry, error) {
	e.At = j.now().UTC().Truncate(time.Microsecond)
	p := &pending{e: e, done: make(chan struct{})}
	j.mu.Lock()
	j.queue = append(j.queue, p)
	lead := !j.writing
	j.writing = true
	j.mu.Unlock()
	if lead {
		// This caller writes the queue (its own record first in it), then
		// hands what arrived meanwhile to a goroutine of its own.
		j.writeNext(ctx)
		j.mu.Lock()
		more := len(j.queue) > 0
		j.writing = more
		j.mu.Unlock()
		if more {
			go j.drain(context.WithoutCancel(ctx))
		}
	}
	select {
	case <-p.done:
		return p.out, p.err
	case <-ctx.Done():
	}
	if j.withdraw(p) {
		return Entry{}, fmt.Errorf("journal: %w", context.Cause(ctx))
	}
	// Its batch is being written: the record may become durable, but the
	// caller gives up and, failing closed, releases nothing.
	return Entry{}, fmt.Errorf("journal: stopped waiting for the record's commit: %w", context.Cause(ctx))
}

// withdraw takes p out of the queue; false when a batch took it already.
func (j *Journal) withdraw(p *pending) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, q := range j.queue {
		if q == p {
			j.queue = append(j.queue[:i:i], j.queue[i+1:]...)
			return true
		}
	}
	return false
}

// maxBatch bounds the records of one journal transaction.
const maxBatch = 64

// writeTimeout bounds the writing of one batch, whoever's context runs it:
// the appends it carries wait for it.
const writeTimeout = appendLockWait + appendIdleLimit + 15*time.Second

// drain writes batches until the queue is empty.
func (j *Journal) drain(ctx context.Context) {
	for {
		j.writeNext(ctx)
		j.mu.Lock()
		if len(j.queue) == 0 {
			j.writing = false
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()
	}
}

// writeNext writes the next batch of the queue and answers its appends.
// A batch that fails for a reason other than a replay is written again one
// record at a time, so that a record the database refuses fails alone.
func (j *Journal) writeNext(ctx context.Context) {
	j.mu.Lock()
	n := min(len(j.queue), maxBatch)
	batch := j.queue[:n:n]
	j.queue = j.queue[n:]
	j.mu.Unlock()
	if j.beforeWrite != nil {
		j.beforeWrite()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	err := j.writeChained(ctx, batch)
	switch {
	case err == nil:
	case len(batch) == 1:
		batch[0].err = err
	default:
		for _, p := range batch {
			if err := j.writeChained(ctx, []*pending{p}); err != nil {
				p.err = err
			}
		}
	}
	for _, p := range batch {
		close(p.done)
	}
}

// writeChained writes batch, chaining onto records another writer added
// meanwhile (not expected under the lock).
func (j *Journal) writeChained(ctx context.Context, batch []*pending) error {
	for try := 0; ; try++ {
		err := j.write(ctx, batch)
		if err != nil && db.IsUniqueViolation(err) && try < 10 {
			continue
		}
		return err
	}
}

// On PostgreSQL, how long an append's transaction may sit idle (its node
// stopped mid-append) before the server ends it, and how long an append
// waits for another's lock.
const (
	appendIdleLimit = 5 * time.Second
	appendLockWait  = 30 * time.Second
)

// write appends the batch's records in one transaction. A replayed request
// fails alone (p.err, nothing written for it); any other error fails the
// whole batch and is returned.
//
// On PostgreSQL, a batch without replay checks is first tried as one
// INSERT (one round trip, atomic by itself) chained onto the tail this
// journal knows, written only if that record is still there as it was.
// Whoever else appended since holds the next sequence number, so the
// primary key refuses the INSERT whole; either way the batch is then
// written the careful way: under the table lock, after the last record.
func (j *Journal) write(ctx context.Context, batch []*pending) error {
	if j.db.Dialect == db.Postgres && j.tail != nil && !slices.ContainsFunc(batch, (*pending).replayChecked) {
		if written, err := j.writeAfterTail(ctx, batch); written || err != nil {
			return err
		}
	}
	var tail *row
	err := j.db.InTx(ctx, func(tx *sqlx.Tx) error {
		if j.db.Dialect == db.Postgres {
			// One appender at a time (several drivers may share the
			// database): a mode that conflicts with itself but not with
			// readers. SQLite's BEGIN IMMEDIATE already serialises writers.
			// A node that stops mid-append (paused, its host frozen) must
			// not hold the lock for the others: PostgreSQL ends a
			// transaction left idle past appendIdleLimit, and a waiter
			// gives up after appendLockWait (its decision then fails,
			// closed, and is retried).
			// One round trip: statements without arguments go as one
			// simple query.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL idle_in_transaction_session_timeout = %d; SET LOCAL lock_timeout = %d;
				LOCK TABLE journal IN SHARE ROW EXCLUSIVE MODE`, appendIdleLimit.Milliseconds(), appendLockWait.Milliseconds())); err != nil {
				return fmt.Errorf("bound and lock the journal: %w", err)
			}
		}
		var last row
		seq, prev := int64(0), genesis
		err := tx.GetContext(ctx, &last, `SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1`)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read the journal's last record: %w", err)
		default:
			seq, prev = last.Seq, last.Hash
		}
		// signedHere: request ids this batch signs, per wallet, for the
		// replay check of the records after them.
		type walletRequest struct{ wallet, request string }
		signedHere := map[walletRequest]string{}
		replayed := func(p *pending) (bool, error) {
			if !p.replayChecked() {
				return false, nil
			}
			e := p.e
			key := walletRequest{e.WalletID, e.RequestID}
			other, ok := signedHere[key]
			if !ok {
				var found []string
				err := tx.SelectContext(ctx, &found, tx.Rebind(`SELECT signature_id FROM journal
					WHERE wallet_id = ? AND request_id = ? AND decision = ? AND signature_id <> ? LIMIT 1`),
					e.WalletID, e.RequestID, string(Signed), e.SignatureID)
				if err != nil {
					return false, fmt.Errorf("replay check: %w", err)
				}
				if len(found) > 0 {
					other, ok = found[0], true
				}
			}
			if ok && other != e.SignatureID {
				p.err = fmt.Errorf("%w (%s)", ErrReplay, other)
				return true, nil
			}
			signedHere[key] = e.SignatureID
			return false, nil
		}
		var checkErr error
		var rows []Entry
		rows, tail = chain(batch, seq, prev, func(p *pending) bool {
			skip, err := replayed(p)
			if err != nil && checkErr == nil {
				checkErr = err
			}
			return skip
		})
		if checkErr != nil {
			return checkErr
		}
		if len(rows) > 0 {
			if err := insert(ctx, tx, rows); err != nil {
				return err
			}
		}
		if tail == nil {
			tail = &row{Seq: seq, Hash: prev}
		}
		return nil
	})
	j.tail = nil // unknown after a failed write
	if err == nil {
		j.tail = tail
	}
	return err
}

// writeAfterTail is write's one-statement path: written is false when
// another writer appended after the known tail, or the database no longer
// holds it, and the batch must go the careful way.
func (j *Journal) writeAfterTail(ctx context.Context, batch []*pending) (written bool, err error) {
	tail := *j.tail
	j.tail = nil // known again only once a write succeeds
	rows, last := chain(batch, tail.Seq, tail.Hash, nil)
	written, err = insertAfter(ctx, j.db, rows, tail)
	switch {
	case err == nil && written:
		j.tail = last
		j.quick.Add(1)
		return true, nil
	case err != nil && !db.IsUniqueViolation(err):
		return false, err
	}
	j.raced.Add(1)
	return false, nil
}

// replayChecked reports whether the record needs the replay check: a
// signature with a request id.
func (p *pending) replayChecked() bool { return p.e.Decision == Signed && p.e.RequestID != "" }

// chain numbers and hashes the records of batch after (seq, prev), leaving
// out those skip refuses, and returns them and the last record (nil if
// none).
func chain(batch []*pending, seq int64, prev string, skip func(*pending) bool) ([]Entry, *row) {
	var rows []Entry
	var last *row
	for _, p := range batch {
		p.err = nil
		if skip != nil && skip(p) {
			continue
		}
		e := p.e
		seq++
		e.Seq, e.PrevHash = seq, prev
		e.Hash = e.hash()
		prev = e.Hash
		p.out = e
		last = &row{Seq: e.Seq, Hash: e.Hash}
		rows = append(rows, e)
	}
	return rows, last
}

// insertAfter writes chained rows in one statement, only if the journal
// still holds tail as it was written: written is false when the record is
// gone or differs (the database was restored or failed over to a copy that
// had not seen it), and the caller then reads the real last record. A
// record after tail makes the primary key refuse the rows instead.
func insertAfter(ctx context.Context, x sqlx.ExtContext, rows []Entry, tail row) (written bool, err error) {
	source, args := rowSource(x, rows)
	args = append(args, tail.Seq, tail.Hash)
	res, err := x.ExecContext(ctx, x.Rebind(`INSERT INTO journal (`+columns+`) SELECT * FROM (`+source+`) AS v (`+columns+`)
		WHERE EXISTS (SELECT 1 FROM journal WHERE seq = ? AND hash = ?)`), args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return err == nil && n == int64(len(rows)), err
}

// insert writes chained rows in one statement.
func insert(ctx context.Context, x sqlx.ExtContext, rows []Entry) error {
	source, args := rowSource(x, rows)
	_, err := x.ExecContext(ctx, x.Rebind(`INSERT INTO journal (`+columns+`) `+source), args...)
	return err
}

// columnCount is how many columns a journal row has.
const columnCount = 13

// rowSource is a query giving rows, and its arguments. On PostgreSQL it
// unnests one array per column: one statement text whatever the batch's
// size, parsed once per connection and planned once, where a VALUES list
// per size is planned anew nearly every time. Elsewhere it is a VALUES list
// with a parenthesised group of placeholders per record, its numbers typed
// (a VALUES list under a SELECT does not take its types from the table).
func rowSource(x sqlx.ExtContext, rows []Entry) (string, []any) {
	fields := func(e *Entry) [columnCount - 2]string {
		return [...]string{e.Node, string(e.Decision), e.Reason, e.WorkID, e.SignatureID, e.RequestID,
			e.WalletID, e.Digest, e.RequesterKey, e.PrevHash, e.Hash}
	}
	if !db.OnPostgres(x) {
		args := make([]any, 0, len(rows)*columnCount)
		for i := range rows {
			args = append(args, rows[i].Seq, rows[i].At.UnixMicro())
			for _, f := range fields(&rows[i]) {
				args = append(args, f)
			}
		}
		const one = `(CAST(? AS BIGINT), CAST(? AS BIGINT), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		return `VALUES ` + strings.Repeat(one+", ", len(rows)-1) + one, args
	}
	seqs, ats := make([]int64, len(rows)), make([]int64, len(rows))
	var texts [columnCount - 2][]string
	for i := range rows {
		seqs[i], ats[i] = rows[i].Seq, rows[i].At.UnixMicro()
		for c, f := range fields(&rows[i]) {
			texts[c] = append(texts[c], f)
		}
	}
	args := []any{seqs, ats}
	for _, t := range texts {
		args = append(args, t)
	}
	return `SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[])` + strings.Repeat(`, CAST(? AS TEXT[])`, columnCount-2) + `)`, args
}

// List returns every record in order.
func (j *Journal) List(ctx context.Context) ([]Entry, error) {
	var rows []row
	if err := j.db.SelectContext(ctx, &rows, `SELECT `+columns+` FROM journal ORDER BY seq`); err != nil {
		return nil, fmt.Errorf("read the journal: %w", err)
	}
	out := make([]Entry, len(rows))
	for i := range rows {
		out[i] = rows[i].entry()
	}
	return out, nil
}

// Break is the first place where the chain does not hold.
type Break struct {
	Seq     int64
	Problem string
}

func (b *Break) Error() string { return fmt.Sprintf("journal record %d: %s", b.Seq, b.Problem) }

// Verify recomputes the chain. It returns the number of records checked
// and, if the chain is broken, the first broken record.
func (j *Journal) Verify(ctx context.Context) (int, *Break, error) {
	entries, err := j.List(ctx)
	if err != nil {
		return 0, nil, err
	}
	return len(entries), Check(entries), nil
}

// Check verifies a chain of records, first to last.
func Check(entries []Entry) *Break {
	prevSeq, prevHash := int64(0), genesis
	for _, e := range entries {
		switch {
		case e.Seq != prevSeq+1:
			return &Break{Seq: e.Seq, Problem: fmt.Sprintf("follows record %d: records are missing", prevSeq)}
		case e.PrevHash != prevHash:
			return &Break{Seq: e.Seq, Problem: "its previous-hash does not match the record before it (that record, or this link, was changed)"}
		case e.hash() != e.Hash:
			return &Break{Seq: e.Seq, Problem: "its content does not match its hash (the record was changed)"}
		}
		prevSeq, prevHash = e.Seq, e.Hash
	}
	return nil
}
