package pgrepl

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// recordingSink writes what it is told as a transcript, one line per call,
// and keeps the bytes of every archive and of the manifest.
type recordingSink struct {
	log      []string
	archives map[string]*bytes.Buffer
	order    []string
	cur      string
	manifest bytes.Buffer
	failOn   string // method name that returns an error
}

var errSinkFull = errors.New("sink: disk full")

func (s *recordingSink) fail(method string) error {
	if s.failOn == method {
		return errSinkFull
	}
	return nil
}

func (s *recordingSink) Start(st Start) error {
	s.log = append(s.log, fmt.Sprintf("Start %s tli %d %v", st.LSN, st.Timeline, st.Tablespaces))
	return s.fail("Start")
}

func (s *recordingSink) BeginArchive(name, location string) error {
	s.log = append(s.log, fmt.Sprintf("BeginArchive %s %q", name, location))
	if s.archives == nil {
		s.archives = map[string]*bytes.Buffer{}
	}
	s.archives[name] = &bytes.Buffer{}
	s.order = append(s.order, name)
	s.cur = name
	return s.fail("BeginArchive")
}

func (s *recordingSink) ArchiveData(p []byte) error {
	s.archives[s.cur].Write(p)
	return s.fail("ArchiveData")
}

func (s *recordingSink) EndArchive() error {
	s.log = append(s.log, fmt.Sprintf("EndArchive %s %d", s.cur, s.archives[s.cur].Len()))
	return s.fail("EndArchive")
}

func (s *recordingSink) ManifestData(p []byte) error {
	s.manifest.Write(p)
	return s.fail("ManifestData")
}

func (s *recordingSink) Progress(n int64) { s.log = append(s.log, fmt.Sprintf("Progress %d", n)) }

func (s *recordingSink) Notice(n *pgconn.Notice) {
	s.log = append(s.log, fmt.Sprintf("Notice %s %s", n.Severity, n.Message))
}

// Message builders for transcripts.
func rowDesc(names ...string) *pgproto3.RowDescription {
	rd := &pgproto3.RowDescription{}
	for _, n := range names {
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(n), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1})
	}
	return rd
}

func dataRow(vals ...any) *pgproto3.DataRow {
	dr := &pgproto3.DataRow{}
	for _, v := range vals {
		if v == nil {
			dr.Values = append(dr.Values, nil)
		} else {
			dr.Values = append(dr.Values, []byte(v.(string)))
		}
	}
	return dr
}

func cc(tag string) *pgproto3.CommandComplete {
	return &pgproto3.CommandComplete{CommandTag: []byte(tag)}
}

func copyMsg(m CopyMessage) *pgproto3.CopyData {
	return &pgproto3.CopyData{Data: m.AppendEncode(nil)}
}

func newArchive(name, loc string) *pgproto3.CopyData {
	return copyMsg(CopyMessage{Kind: KindNewArchive, Name: name, Location: loc})
}

func data(s string) *pgproto3.CopyData {
	return copyMsg(CopyMessage{Kind: KindData, Data: []byte(s)})
}

func progress(n int64) *pgproto3.CopyData {
	return copyMsg(CopyMessage{Kind: KindProgress, Progress: n})
}

func notice(sev, msg string) *pgproto3.NoticeResponse {
	return &pgproto3.NoticeResponse{Severity: sev, SeverityUnlocalized: sev, Code: "01000", Message: msg}
}

func errorResponse(code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg}
}

// header is the start of every BASE_BACKUP response: start position and a
// tablespace list with one user tablespace.
func header() []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		rowDesc("recptr", "tli"), dataRow("0/3000028", "1"), cc("SELECT"),
		rowDesc("spcoid", "spclocation", "size"),
		dataRow("16387", "/srv/pg/ts1", "371"), dataRow(nil, nil, "33644"), cc("SELECT"),
		&pgproto3.CopyOutResponse{},
	}
}

func trailer() []pgproto3.BackendMessage {
	return []pgproto3.BackendMessage{
		&pgproto3.CopyDone{},
		rowDesc("recptr", "tli"), dataRow("0/3000100", "1"), cc("SELECT"),
		cc("BASE_BACKUP"), &pgproto3.ReadyForQuery{TxStatus: 'I'},
	}
}

func concat(parts ...[]pgproto3.BackendMessage) []pgproto3.BackendMessage {
	var out []pgproto3.BackendMessage
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func msgs(m ...pgproto3.BackendMessage) []pgproto3.BackendMessage { return m }

// run feeds the transcript to a session and returns the sink, the result
// and the error: the handle error (protocol or sink) or, after
// ReadyForQuery, the final server error.
func run(t *testing.T, opts BaseBackupOptions, sink *recordingSink, transcript []pgproto3.BackendMessage) (Result, error, bool) {
	t.Helper()
	s := newBackupSession("base backup of test", opts, sink)
	for i, m := range transcript {
		done, err := s.handle(m)
		if err != nil {
			return s.res, err, false
		}
		if done {
			if i != len(transcript)-1 {
				t.Fatalf("done after message %d of %d", i+1, len(transcript))
			}
			return s.res, s.finalError(nil), true
		}
	}
	t.Fatalf("transcript ended before ReadyForQuery")
	return Result{}, nil, false
}

func TestBackupSession(t *testing.T) {
	sink := &recordingSink{}
	res, err, done := run(t, BaseBackupOptions{Manifest: ManifestYes}, sink, concat(
		msgs(notice("WARNING", "still waiting for WAL summarization")),
		header(),
		msgs(
			newArchive("16387.tar", "/srv/pg/ts1"), data("PG_15_202209061/"), data("more"), progress(380928),
			newArchive("base.tar", ""), data("backup_label"), &pgproto3.ParameterStatus{Name: "x", Value: "y"},
			data("..."), progress(51622400),
			notice("NOTICE", "WAL archiving is not enabled"),
			copyMsg(CopyMessage{Kind: KindManifest}), data("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n"), data("}\n"),
		),
		trailer(),
	))
	if err != nil || !done {
		t.Fatalf("err %v, done %v", err, done)
	}
	wantLog := []string{
		"Notice WARNING still waiting for WAL summarization",
		"Start 0/3000028 tli 1 [{16387 /srv/pg/ts1 371} {0  33644}]",
		`BeginArchive 16387.tar "/srv/pg/ts1"`,
		"Progress 380928",
		"EndArchive 16387.tar 20",
		`BeginArchive base.tar ""`,
		"Progress 51622400",
		"Notice NOTICE WAL archiving is not enabled",
		"EndArchive base.tar 15",
	}
	if d := cmp.Diff(wantLog, sink.log); d != "" {
		t.Errorf("sink calls (-want +got):\n%s", d)
	}
	if got := sink.manifest.String(); got != "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n}\n" {
		t.Errorf("manifest = %q", got)
	}
	want := Result{
		Start: 0x3000028, End: 0x3000100, StartTimeline: 1, EndTimeline: 1,
		Tablespaces:   []Tablespace{{OID: 16387, Location: "/srv/pg/ts1", SizeKB: 371}, {SizeKB: 33644}},
		Archives:      []Archive{{Name: "16387.tar", Location: "/srv/pg/ts1", Bytes: 20}, {Name: "base.tar", Bytes: 15}},
		ManifestBytes: 45, BytesDone: 51622400,
	}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("Result (-want +got):\n%s", d)
	}
}

func TestBackupSessionBlackholeAndNoProgressSizes(t *testing.T) {
	sink := &recordingSink{}
	res, err, _ := run(t, BaseBackupOptions{Target: TargetBlackhole, Manifest: ManifestYes}, sink, msgs(
		rowDesc("recptr", "tli"), dataRow("0/3000028", "2"), cc("SELECT"),
		rowDesc("spcoid", "spclocation", "size"), dataRow(nil, nil, nil), cc("SELECT"),
		&pgproto3.CopyOutResponse{},
		newArchive("base.tar", ""), progress(100),
		copyMsg(CopyMessage{Kind: KindManifest}),
		&pgproto3.CopyDone{},
		rowDesc("recptr", "tli"), dataRow("0/4000000", "2"), cc("SELECT"),
		cc("BASE_BACKUP"), &pgproto3.ReadyForQuery{TxStatus: 'I'},
	))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Tablespace{{SizeKB: -1}}, res.Tablespaces); d != "" {
		t.Errorf("tablespaces (-want +got):\n%s", d)
	}
	if res.StartTimeline != 2 || res.Archives[0].Bytes != 0 {
		t.Errorf("result %+v", res)
	}
}

// TestBackupSessionSplitting feeds the same archives cut into CopyData
// messages at random places, one byte at a time and whole: the sink must
// see the same bytes and the same boundaries every time.
func TestBackupSessionSplitting(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ts := make([]byte, 5000)
	base := make([]byte, 70000)
	man := []byte(strings.Repeat("manifest line\n", 300))
	for _, b := range [][]byte{ts, base} {
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
	}
	split := func(b []byte, max int) []pgproto3.BackendMessage {
		var out []pgproto3.BackendMessage
		for len(b) > 0 {
			n := len(b)
			if max > 0 {
				n = min(n, 1+rng.IntN(max))
			}
			out = append(out, copyMsg(CopyMessage{Kind: KindData, Data: b[:n]}))
			b = b[n:]
		}
		return out
	}
	for _, max := range []int{1, 7, 512, 32768, 0} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			if max == 1 && testing.Short() {
				t.Skip("slow")
			}
			sink := &recordingSink{}
			_, err, _ := run(t, BaseBackupOptions{Manifest: ManifestYes}, sink, concat(
				header(),
				msgs(newArchive("16387.tar", "/srv/pg/ts1")), split(ts, max),
				msgs(newArchive("base.tar", "")), split(base, max),
				msgs(copyMsg(CopyMessage{Kind: KindManifest})), split(man, max),
				trailer(),
			))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sink.archives["16387.tar"].Bytes(), ts) || !bytes.Equal(sink.archives["base.tar"].Bytes(), base) ||
				!bytes.Equal(sink.manifest.Bytes(), man) {
				t.Error("bytes differ")
			}
			if d := cmp.Diff([]string{"16387.tar", "base.tar"}, sink.order); d != "" {
				t.Errorf("archive order (-want +got):\n%s", d)
			}
		})
	}
}

func TestBackupSessionChecksumFailure(t *testing.T) {
	sink := &recordingSink{}
	res, err, done := run(t, BaseBackupOptions{}, sink, concat(
		header(),
		msgs(
			newArchive("16387.tar", "/srv/pg/ts1"), data("x"),
			newArchive("base.tar", ""),
			notice("WARNING", `checksum verification failed in file "./base/5/16384", block 0: calculated 1A2B but expected 3C4D`),
			notice("WARNING", `checksum verification failed in file "./base/5/16384", block 1: calculated 1A2B but expected 3C4D`),
			notice("WARNING", `file "./base/5/16384" has a total of 2 checksum verification failures`),
			notice("WARNING", `checksum verification failed in file "pg_tblspc/16387/PG_15_202209061/5/16390", block 3: calculated 1 but expected 2`),
			data("y"),
			&pgproto3.CopyDone{},
			rowDesc("recptr", "tli"), dataRow("0/3000100", "1"), cc("SELECT"),
			errorResponse("XX001", "checksum verification failure during base backup"),
			&pgproto3.ReadyForQuery{TxStatus: 'I'},
		),
	))
	if !done {
		t.Fatalf("not done: %v", err)
	}
	if !errors.Is(err, ErrChecksumFailure) {
		t.Fatalf("err = %v, want ErrChecksumFailure", err)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "XX001" {
		t.Errorf("PgError not reachable: %v", err)
	}
	for _, f := range []string{"./base/5/16384", "pg_tblspc/16387/PG_15_202209061/5/16390"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
	if d := cmp.Diff([]string{"./base/5/16384", "pg_tblspc/16387/PG_15_202209061/5/16390"}, res.ChecksumFailures); d != "" {
		t.Errorf("ChecksumFailures (-want +got):\n%s", d)
	}
	if res.End != 0x3000100 || len(sink.log) == 0 || sink.log[len(sink.log)-1] != "EndArchive base.tar 1" {
		t.Errorf("stream not complete: %+v %v", res, sink.log)
	}
}

func TestBackupSessionServerErrors(t *testing.T) {
	tests := []struct {
		name       string
		transcript []pgproto3.BackendMessage
		kind       error
	}{
		{"before the start", msgs(
			errorResponse("55000", "WAL level not sufficient for making an online backup"),
			&pgproto3.ReadyForQuery{TxStatus: 'I'}), ErrWALLevel},
		{"mid-COPY, then anything until ReadyForQuery", concat(header(), msgs(
			newArchive("base.tar", ""), data("abc"),
			errorResponse("58P01", "requested WAL segment 000000010000000000000003 has already been removed"),
			data("ignored"), &pgproto3.ReadyForQuery{TxStatus: 'I'})), nil},
		{"summarize_wal off", msgs(
			errorResponse("55000", "incremental backups cannot be taken unless WAL summarization is enabled"),
			&pgproto3.ReadyForQuery{TxStatus: 'I'}), ErrSummarizeWAL},
		{"summaries incomplete", msgs(
			errorResponse("55000", "WAL summaries are required on timeline 1 from 0/7000028 to 0/9000028, but the summaries for that timeline and LSN range are incomplete"),
			&pgproto3.ReadyForQuery{TxStatus: 'I'}), ErrIncremental},
		{"no manifest uploaded", msgs(
			errorResponse("55000", "must UPLOAD_MANIFEST before performing an incremental BASE_BACKUP"),
			&pgproto3.ReadyForQuery{TxStatus: 'I'}), ErrManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err, done := run(t, BaseBackupOptions{}, &recordingSink{}, tt.transcript)
			if !done || err == nil {
				t.Fatalf("done %v, err %v", done, err)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				t.Errorf("PgError not reachable from %v", err)
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("err = %v, want %v", err, tt.kind)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("not one line: %q", err)
			}
		})
	}
}

func TestBackupSessionProtocolErrors(t *testing.T) {
	tests := []struct {
		name       string
		opts       BaseBackupOptions
		transcript []pgproto3.BackendMessage
	}{
		{"data before any archive", BaseBackupOptions{}, concat(header(), msgs(data("x")))},
		{"archive after the manifest", BaseBackupOptions{Manifest: ManifestYes}, concat(header(), msgs(
			newArchive("base.tar", ""), copyMsg(CopyMessage{Kind: KindManifest}), newArchive("16387.tar", "")))},
		{"two manifests", BaseBackupOptions{Manifest: ManifestYes}, concat(header(), msgs(
			newArchive("base.tar", ""), copyMsg(CopyMessage{Kind: KindManifest}), copyMsg(CopyMessage{Kind: KindManifest})))},
		{"archive name is a path", BaseBackupOptions{}, concat(header(), msgs(newArchive("../base.tar", "")))},
		{"archive name with a zero OID", BaseBackupOptions{}, concat(header(), msgs(newArchive("0.tar", "")))},
		{"archive sent twice", BaseBackupOptions{}, concat(header(), msgs(newArchive("base.tar", ""), newArchive("base.tar", "")))},
		{"unknown CopyData kind", BaseBackupOptions{}, concat(header(), msgs(&pgproto3.CopyData{Data: []byte("zzz")}))},
		{"no base archive", BaseBackupOptions{}, concat(header(), msgs(newArchive("16387.tar", ""), &pgproto3.CopyDone{}))},
		{"manifest missing", BaseBackupOptions{Manifest: ManifestYes}, concat(header(), msgs(newArchive("base.tar", ""), &pgproto3.CopyDone{}))},
		{"ReadyForQuery too early", BaseBackupOptions{}, concat(header(), msgs(&pgproto3.ReadyForQuery{TxStatus: 'I'}))},
		{"start set with two rows", BaseBackupOptions{}, msgs(rowDesc("recptr", "tli"), dataRow("0/1", "1"), dataRow("0/2", "1"), cc("SELECT"))},
		{"start set with a bad LSN", BaseBackupOptions{}, msgs(rowDesc("recptr", "tli"), dataRow("zz", "1"), cc("SELECT"))},
		{"timeline zero", BaseBackupOptions{}, msgs(rowDesc("recptr", "tli"), dataRow("0/1", "0"), cc("SELECT"))},
		{"DataRow width", BaseBackupOptions{}, msgs(rowDesc("recptr", "tli"), dataRow("0/1"))},
		{"no data directory row", BaseBackupOptions{}, msgs(rowDesc("recptr", "tli"), dataRow("0/1", "1"), cc("SELECT"),
			rowDesc("spcoid", "spclocation", "size"), dataRow("16387", "/x", nil), cc("SELECT"))},
		{"CopyData outside COPY", BaseBackupOptions{}, msgs(data("x"))},
		{"CopyInResponse", BaseBackupOptions{}, concat(header()[:7], msgs(&pgproto3.CopyInResponse{}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err, _ := run(t, tt.opts, &recordingSink{}, tt.transcript)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
		})
	}
}

func TestBackupSessionSinkError(t *testing.T) {
	for _, method := range []string{"Start", "BeginArchive", "ArchiveData", "EndArchive", "ManifestData"} {
		t.Run(method, func(t *testing.T) {
			_, err, done := run(t, BaseBackupOptions{Manifest: ManifestYes}, &recordingSink{failOn: method}, concat(header(), msgs(
				newArchive("base.tar", ""), data("x"), copyMsg(CopyMessage{Kind: KindManifest}), data("m")), trailer()))
			if done || !errors.Is(err, errSinkFull) {
				t.Fatalf("done %v, err %v; want the sink's error before the end", done, err)
			}
		})
	}
}

func TestValidArchiveName(t *testing.T) {
	for name, want := range map[string]bool{
		"base.tar": true, "16387.tar": true, "base.tar.gz": true, "16387.tar.lz4": true, "base.tar.zst": true,
		"base.tar.bz2": false, "base": false, "0.tar": false, "016387.tar": false, "-1.tar": false,
		"4294967296.tar": false, "../base.tar": false, "a/base.tar": false, "": false, ".tar": false,
		"base.tar.gz.gz": false,
	} {
		if got := validArchiveName(name); got != want {
			t.Errorf("validArchiveName(%q) = %v, want %v", name, got, want)
		}
	}
}
