-- +goose Up
-- PostgreSQL's 00100 leaves room in the signatures table's pages for
-- heap-only updates; SQLite has no such setting. This keeps both dialects'
-- migrations numbered alike.
SELECT 1;

-- +goose Down
SELECT 1;
