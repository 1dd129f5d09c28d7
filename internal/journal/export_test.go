package journal

// SetBeforeWrite sets a function called before each batch is written.
func (j *Journal) SetBeforeWrite(f func()) { j.beforeWrite = f }

// Queued is how many appends wait for the next batch.
func (j *Journal) Queued() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.queue)
}

// OneStatementWrites is how many batches the one-statement path wrote and
// how many it lost to another writer.
func (j *Journal) OneStatementWrites() (written, raced int64) { return j.quick.Load(), j.raced.Load() }
