-- +goose Up
-- A signature request is written twice: queued, then signed (status, r, s,
-- recovery id). None of those columns is indexed, so the second write can
-- be a heap-only update, touching no index, when the row's page has room
-- for the new version; at the default fillfactor (100) the queue's inserts
-- fill every page and each signing wrote a new entry into all four of the
-- table's indexes. Leaving a third of each new page free keeps most
-- signings on their page. It applies to pages written from now on.
ALTER TABLE signatures SET (fillfactor = 70);

-- +goose Down
ALTER TABLE signatures RESET (fillfactor);
