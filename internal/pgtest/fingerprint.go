package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Fingerprint digests the contents of every user table of every database (template0 aside)
// that connstr's user can reach. Keys are "database.schema.table"; a value holds the row count
// and an order-independent digest of the rows' text forms, so two clusters hold the same data
// exactly when their fingerprints are equal (compare them with cmp.Diff). connstr should name
// a superuser; its dbname is replaced for each database.
//
// The digest sums two 64-bit halves of each row's md5 as numeric: it streams through tables of
// any size, with no sort and no giant string.
func Fingerprint(t testing.TB, connstr string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(connstr)
	if err != nil {
		t.Fatalf("pgtest: fingerprint: parse connection string: %v", err)
	}
	dbs := queryStrings(ctx, t, cfg, "SELECT datname FROM pg_database WHERE datname <> 'template0' ORDER BY 1")
	out := make(map[string]string)
	for _, db := range dbs {
		dcfg := cfg.Copy()
		dcfg.Database = db
		tables := queryStrings(ctx, t, dcfg, `
			SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p')
			  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
			ORDER BY 1`)
		for _, tbl := range tables {
			sum := queryStrings(ctx, t, dcfg, fmt.Sprintf(`
				SELECT count(*) || ' rows ' ||
				       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0) || ':' ||
				       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)
				FROM (SELECT md5(r::text) AS h FROM %s r) d`, tbl))
			out[db+"."+tbl] = sum[0]
		}
	}
	return out
}

// queryStrings runs sql on a new connection and returns the first column of every row.
func queryStrings(ctx context.Context, t testing.TB, cfg *pgx.ConnConfig, sql string) []string {
	t.Helper()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: fingerprint: connect to database %s: %v", cfg.Database, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("pgtest: fingerprint database %s: %v (sql: %s)", cfg.Database, err, sql)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("pgtest: fingerprint database %s: %v (sql: %s)", cfg.Database, err, sql)
	}
	return out
}
