package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/buildinfo"
	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/repo"
	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
	"github.com/holdfast-backup/holdfast/internal/wal"
)

// Errors callers classify.
var (
	// ErrIngest means the data received does not match the server's manifest.
	ErrIngest = errors.New("backup: received data does not match the manifest")
	// ErrLevel means the requested level cannot be taken.
	ErrLevel = errors.New("backup: level not possible")
	// ErrProtocol means the server sent something a backup cannot contain.
	ErrProtocol = errors.New("backup: unexpected data from server")
)

// maxManifest bounds the manifest kept in memory for the ingest check. A
// manifest costs about 200 bytes per file; this allows ten million files.
const maxManifest = 2 << 30

// walFrameSize is the frame size of pg_wal.tar.
const walFrameSize = 1 << 20

// Progress is a snapshot of a running backup.
type Progress struct {
	Target string
	Done   int64 // bytes the server has sent, before compression
	Total  int64 // the server's estimate; 0 if unknown
}

// Engine takes backups into one repository.
type Engine struct {
	Repo     *repo.Repo
	Log      *slog.Logger
	Progress func(Progress) // optional; called from the receive loop, must not block
	Now      func() time.Time
}

// Options adjust one run.
type Options struct {
	Level string // overrides the target's level when set
	Label string
}

// Result is what a successful run committed, and why it chose its level.
type Result struct {
	Entry     repo.Entry
	LevelNote string // set when auto fell back to a full backup
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run takes one backup of t. On error nothing is committed.
func (e *Engine) Run(ctx context.Context, t Target, opt Options) (*Result, error) {
	res, err := e.run(ctx, t, opt)
	level := firstNonEmpty(opt.Level, t.Level, "auto")
	if err != nil && level == "auto" && errors.Is(err, pgrepl.ErrIncremental) {
		// The server cannot take an incremental backup on this parent (WAL
		// summaries missing or expired, history mismatch): auto means a
		// full backup then.
		note := "the server refused an incremental backup: " + rootMessage(err)
		opt.Level = "full"
		res, err = e.run(ctx, t, opt)
		if res != nil {
			res.LevelNote = note
		}
	}
	return res, err
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// rootMessage is the innermost message of a pgrepl error, for notes.
func rootMessage(err error) string {
	var pe *pgrepl.Error
	if errors.As(err, &pe) && pe.Reason != "" {
		return pe.Reason
	}
	return err.Error()
}

func (e *Engine) run(ctx context.Context, t Target, opt Options) (*Result, error) {
	started := e.now().UTC()
	conn, err := pgrepl.Connect(ctx, t.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The WAL connection and its temporary slot are opened meanwhile (a
	// connection costs the server a fork); they are joined before the
	// backup starts, so the WAL from the backup's start is retained
	// whatever checkpoints happen meanwhile.
	var walOpen *walOpening
	if t.WAL != "fetch" {
		walOpen = openWAL(ctx, t.ConnInfo)
		defer walOpen.discard(ctx)
	}

	sys, err := conn.IdentifySystem(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	segText, err := conn.Show(ctx, "wal_segment_size")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	segSize, err := wal.ParseSegmentSize(segText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	plan, err := e.chooseLevel(ctx, conn, t, sys, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	id := repo.NewID(started)
	r := &run{
		e:       e,
		t:       t,
		ctx:     ctx,
		dir:     repo.Dir(t.Config, t.Host, t.DiskKey, id),
		segSize: segSize,
		sys:     sys,
		members: map[string]fileSum{},
	}
	if r.hashFn, err = hashFunc(t.Checksums); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	committed := false
	defer func() {
		if !committed {
			r.abort()
		}
	}()

	if walOpen != nil {
		if r.walConn, r.walSlot, err = walOpen.join(); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
	}
	if plan.parent != nil {
		if err := conn.UploadManifest(ctx, bytes.NewReader(plan.manifest)); err != nil {
			return nil, fmt.Errorf("%s: upload manifest of parent %s: %w", t, plan.parent.ID, err)
		}
	}
	label := opt.Label
	if label == "" {
		label = "holdfast " + id
	}
	bb := pgrepl.BaseBackupOptions{
		Label: label,
		// PROGRESS makes the server size every file before sending. For an
		// incremental backup that estimate is of the full files, so it is
		// skipped there: progress then shows bytes and rate only.
		Progress:          plan.parent == nil,
		Checkpoint:        pgrepl.Checkpoint(t.Checkpoint),
		WAL:               t.WAL == "fetch",
		Manifest:          pgrepl.ManifestYes,
		ManifestChecksums: t.Checksums,
		NoVerifyChecksums: !t.VerifyChecksums,
		MaxRate:           t.MaxRate,
		Incremental:       plan.parent != nil,
	}
	bb.Compression, bb.CompressionDetail = serverCompression(t.ServerCompression)
	res, err := conn.BaseBackup(ctx, bb, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	if err := r.finishWAL(res.End); err != nil {
		return nil, fmt.Errorf("%s: stream WAL: %w", t, err)
	}
	m, err := r.checkIngest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	if plan.parent != nil {
		if err := checkChainLink(r.label, *plan.parent); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
	}
	if err := r.putManifest(); err != nil {
		return nil, fmt.Errorf("%s: store backup_manifest: %w", t, err)
	}

	b := &repo.Backup{
		ID:                id,
		Config:            t.Config,
		Host:              t.Host,
		Disk:              t.Disk,
		Level:             repo.LevelFull,
		PGVersion:         conn.Major(),
		PGVersionNum:      conn.ServerVersionNum(),
		SystemIdentifier:  fmt.Sprint(sys.SystemID),
		Timeline:          res.StartTimeline,
		StartLSN:          res.Start,
		EndLSN:            res.End,
		EndTimeline:       res.EndTimeline,
		StartedAt:         started,
		ChecksumAlgorithm: checksumName(m),
		ManifestSize:      int64(len(r.manifest)),
		ManifestSHA256:    sha256Hex(r.manifest),
		WALMethod:         t.WAL,
		WALSegmentSize:    segSize,
		Label:             label,
		Archives:          r.archives,
		Holdfast:          buildinfo.Version,
	}
	if plan.parent != nil {
		b.Level = repo.LevelIncremental
		p := plan.parent.ID
		b.Parent = &p
	}
	for _, a := range r.archives {
		b.SizeBytes += a.RawSize
		b.StoredBytes += a.StoredSize + a.IndexSize
	}
	b.StoredBytes += b.ManifestSize
	b.FinishedAt = e.now().UTC()
	if err := e.Repo.Commit(ctx, r.dir, b); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	committed = true
	return &Result{Entry: repo.Entry{Backup: *b, Dir: r.dir}, LevelNote: plan.note}, nil
}

func checksumName(m *manifest.Manifest) string {
	for _, f := range m.Files {
		if f.Algorithm != "" {
			return f.Algorithm
		}
	}
	return "NONE"
}

func hashFunc(alg string) (func() hash.Hash, error) {
	if alg == "" {
		alg = "CRC32C"
	}
	if _, err := manifest.NewHash(alg); err != nil {
		return nil, err
	}
	if strings.EqualFold(alg, "NONE") {
		return nil, nil
	}
	return func() hash.Hash { h, _ := manifest.NewHash(alg); return h }, nil
}

// fileSum is what the archive writer measured for one regular file.
type fileSum struct {
	size     int64
	checksum []byte
}

// run is one backup in progress; it is the replication client's sink.
type run struct {
	e       *Engine
	t       Target
	ctx     context.Context
	dir     string
	segSize uint64
	sys     pgrepl.System
	hashFn  func() hash.Hash

	estimate int64

	// current archive
	cur      *openArchive
	archives []repo.Archive
	members  map[string]fileSum // manifest path → measured
	label    []byte             // backup_label content, for chain checks
	head     []byte             // the first labelPrefix bytes of base.tar

	manifest []byte

	// WAL streaming
	walConn   *pgrepl.Conn
	walSlot   string
	walStop   chan wal.LSN
	walDone   chan error
	walCancel context.CancelFunc
	walArc    *openArchive

	mu      sync.Mutex
	uploads []blob.Upload // every upload not yet committed, for abort
}

type openArchive struct {
	in       io.Writer     // where the server's bytes go
	unzip    *decompressor // when the server compressed the archive
	name     string
	oid      uint32
	location string
	object   string
	up       blob.Upload
	w        *archive.Writer
}

// archiveName is compiled on first use, as walSegment.
var archiveName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(base|[1-9][0-9]{0,9})\.tar$`) })

func (r *run) track(u blob.Upload) {
	r.mu.Lock()
	r.uploads = append(r.uploads, u)
	r.mu.Unlock()
}

func (r *run) openArchive(sent, location string) (*openArchive, error) {
	name, method := splitCompressed(sent)
	m := archiveName().FindStringSubmatch(name)
	if m == nil && name != "pg_wal.tar" {
		return nil, fmt.Errorf("%w: archive name %q", ErrProtocol, sent)
	}
	var oid uint32
	if m != nil && m[1] != "base" {
		var v uint64
		fmt.Sscan(m[1], &v)
		oid = uint32(v)
	}
	stem := strings.TrimSuffix(name, ".tar")
	object := stem + r.t.objectSuffix()
	up, err := r.e.Repo.Writer().Create(r.ctx, r.dir+object)
	if err != nil {
		return nil, err
	}
	r.track(up)
	comp := archive.Zstd
	if r.t.objectSuffix() == ".tar" {
		comp = archive.None
	}
	opts := archive.Options{Compression: comp, Hash: r.hashFn}
	if name == "pg_wal.tar" {
		// WAL is not in the manifest, and arrives at the server's WAL rate:
		// one compression worker keeps up and keeps memory down. Nothing
		// reads WAL by random access, so frames of 1 MiB serve as well as
		// 4 MiB ones, at a quarter of the buffers (a backup that writes
		// little else would spend its time faulting them in).
		opts.Hash, opts.Concurrency, opts.FrameSize = nil, 1, walFrameSize
	}
	a := &openArchive{
		name: name, oid: oid, location: location, object: object, up: up,
		// The Writer writes whole frames; the upload buffers what it
		// needs to (a local file's write buffer, an S3 part).
		w: archive.NewWriter(up, opts),
	}
	a.in = a.w
	if name == "base.tar" {
		a.in = &headWriter{r: r, w: a.w}
	}
	if method != "" {
		if a.unzip, err = newDecompressor(method, a.in); err != nil {
			return nil, err
		}
		a.in = a.unzip
	}
	return a, nil
}

// closeArchive finishes an archive: flush, store its index, commit both.
func (r *run) closeArchive(a *openArchive) error {
	var unzipErr error
	if a.unzip != nil {
		unzipErr = a.unzip.Close()
	}
	res, err := a.w.Close() // always: it stops the writer's goroutines
	if unzipErr != nil {
		return fmt.Errorf("archive %s: %w", a.name, unzipErr)
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", a.name, err)
	}
	if err := a.up.Commit(r.ctx); err != nil {
		return fmt.Errorf("write %s: %w", a.object, err)
	}
	idxName := a.object + ".idx"
	iu, err := r.e.Repo.Writer().Create(r.ctx, r.dir+idxName)
	if err != nil {
		return err
	}
	r.track(iu)
	if _, err := iu.Write(res.Index); err != nil {
		return fmt.Errorf("write %s: %w", idxName, err)
	}
	if err := iu.Commit(r.ctx); err != nil {
		return fmt.Errorf("write %s: %w", idxName, err)
	}
	stored := repo.Archive{
		Name:         a.name,
		Object:       a.object,
		Compression:  map[bool]string{true: "zstd", false: "none"}[strings.HasSuffix(a.object, ".zst")],
		TablespaceID: a.oid,
		Location:     a.location,
		RawSize:      res.RawSize,
		StoredSize:   res.StoredSize,
		CRC32C:       fmt.Sprintf("%08x", res.StoredCRC32C),
		Index:        idxName,
		IndexSize:    int64(len(res.Index)),
		IndexSHA256:  sha256Hex(res.Index),
		Members:      len(res.Members),
	}
	r.archives = append(r.archives, stored)
	if a.name == "pg_wal.tar" {
		return nil
	}
	prefix := stored.ManifestPrefix()
	for _, m := range res.Members {
		if m.Type != archive.TypeReg {
			continue
		}
		p := prefix + strings.TrimPrefix(m.Name, "./")
		if _, dup := r.members[p]; dup {
			return fmt.Errorf("%w: %s appears twice", ErrProtocol, p)
		}
		r.members[p] = fileSum{size: m.Size, checksum: m.Checksum}
	}
	if a.name == "base.tar" {
		label, err := readBackupLabel(r.head)
		if err != nil {
			return err
		}
		r.label = label
	}
	return nil
}

// Start is called with the backup's start position.
func (r *run) Start(s pgrepl.Start) error {
	for _, ts := range s.Tablespaces {
		if ts.SizeKB > 0 {
			r.estimate += ts.SizeKB * 1024
		}
	}
	if r.walConn == nil {
		return nil
	}
	return r.startWAL(s)
}

// BeginArchive opens the next archive.
func (r *run) BeginArchive(name, location string) error {
	if r.cur != nil {
		return fmt.Errorf("%w: archive %s begins before %s ended", ErrProtocol, name, r.cur.name)
	}
	if name == "pg_wal.tar" {
		return fmt.Errorf("%w: the server sent an archive named pg_wal.tar", ErrProtocol)
	}
	r.e.log().Debug("archive begins", "target", r.t.String(), "name", name, "location", location)
	a, err := r.openArchive(name, location)
	if err != nil {
		return err
	}
	r.cur = a
	return nil
}

// ArchiveData appends bytes to the current archive.
func (r *run) ArchiveData(p []byte) error {
	if r.cur == nil {
		return fmt.Errorf("%w: archive data outside an archive", ErrProtocol)
	}
	_, err := r.cur.in.Write(p)
	return err
}

// EndArchive closes the current archive.
func (r *run) EndArchive() error {
	if r.cur == nil {
		return fmt.Errorf("%w: end of archive outside an archive", ErrProtocol)
	}
	a := r.cur
	r.cur = nil
	return r.closeArchive(a)
}

// ManifestData collects the manifest.
func (r *run) ManifestData(p []byte) error {
	if len(r.manifest)+len(p) > maxManifest {
		return fmt.Errorf("%w: backup_manifest larger than %d bytes", ErrProtocol, maxManifest)
	}
	r.manifest = append(r.manifest, p...)
	return nil
}

// Progress reports the server's byte count.
func (r *run) Progress(done int64) {
	if r.e.Progress != nil {
		r.e.Progress(Progress{Target: r.t.String(), Done: done, Total: r.estimate})
	}
}

// Notice logs what the server says during the backup.
func (r *run) Notice(n *pgconn.Notice) {
	r.e.log().Info("server notice", "target", r.t.String(), "severity", n.Severity, "code", n.Code, "message", n.Message)
}

// walOpening is the WAL connection and its temporary slot being opened
// on a goroutine of their own.
type walOpening struct {
	done chan struct{}
	conn *pgrepl.Conn // nil once join has handed it over
	slot string
	err  error
}

// openWAL starts opening the second connection and its temporary slot.
func openWAL(ctx context.Context, connInfo string) *walOpening {
	w := &walOpening{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		c, err := pgrepl.Connect(ctx, connInfo)
		if err != nil {
			w.err = fmt.Errorf("WAL connection: %w", err)
			return
		}
		slot, err := c.CreateTemporarySlot(ctx)
		if err != nil {
			c.Close(context.WithoutCancel(ctx))
			w.err = err
			return
		}
		w.conn, w.slot = c, slot
	}()
	return w
}

// join waits for the opening; the connection is the caller's afterwards.
func (w *walOpening) join() (*pgrepl.Conn, string, error) {
	<-w.done
	c := w.conn
	w.conn = nil
	return c, w.slot, w.err
}

// discard closes the connection if it was never joined (the run failed
// before the backup started).
func (w *walOpening) discard(ctx context.Context) {
	<-w.done
	if w.conn != nil {
		w.conn.Close(context.WithoutCancel(ctx))
	}
}

// startWAL streams WAL from the backup's start into pg_wal.tar.
func (r *run) startWAL(s pgrepl.Start) error {
	a, err := r.openArchive("pg_wal.tar", "")
	if err != nil {
		return err
	}
	r.walArc = a
	ctx, cancel := context.WithCancel(r.ctx)
	r.walCancel = cancel
	r.walStop = make(chan wal.LSN, 1)
	r.walDone = make(chan error, 1)
	opts := pgrepl.StreamOptions{
		Start: s.LSN, Timeline: s.Timeline, SegmentSize: r.segSize, SystemID: r.sys.SystemID, Slot: r.walSlot,
		OnNotice: r.Notice,
	}
	go func() {
		_, err := r.walConn.StreamWAL(ctx, opts, a.w, r.walStop)
		r.walDone <- err
	}()
	return nil
}

// finishWAL tells the streamer where the backup ended, waits for it and
// closes the pg_wal archive.
func (r *run) finishWAL(end wal.LSN) error {
	if r.walArc == nil {
		return nil
	}
	r.walStop <- end
	err := <-r.walDone
	r.walCancel()
	r.walCancel = nil
	r.closeWAL()
	if err != nil {
		return err
	}
	a := r.walArc
	r.walArc = nil
	return r.closeArchive(a)
}

// closeWAL closes the WAL connection, dropping its temporary slot.
func (r *run) closeWAL() {
	if r.walConn != nil {
		r.walConn.Close(context.WithoutCancel(r.ctx))
		r.walConn = nil
	}
}

// abort discards everything this run wrote.
func (r *run) abort() {
	if r.walCancel != nil {
		r.walCancel()
		<-r.walDone
		r.walCancel = nil
	}
	r.closeWAL()
	if r.cur != nil && r.cur.unzip != nil {
		r.cur.unzip.Abort(errors.New("backup aborted"))
	}
	// Archives still open stop their pipelines (goroutines, frames,
	// encoders): in serve a failed dump must not leave them behind.
	for _, a := range []*openArchive{r.cur, r.walArc} {
		if a != nil {
			a.w.Close()
		}
	}
	r.mu.Lock()
	ups := r.uploads
	r.mu.Unlock()
	for _, u := range ups {
		_ = u.Abort()
	}
	ctx := context.WithoutCancel(r.ctx)
	if err := r.e.Repo.Discard(ctx, r.dir); err != nil {
		r.e.log().Error("could not remove the objects of a failed backup", "dir", r.dir, "error", err.Error())
	}
}

func (r *run) putManifest() error {
	up, err := r.e.Repo.Writer().Create(r.ctx, repo.ManifestKey(r.dir))
	if err != nil {
		return err
	}
	r.track(up)
	if _, err := up.Write(r.manifest); err != nil {
		return err
	}
	return up.Commit(r.ctx)
}

// headWriter keeps the first labelPrefix bytes of base.tar, where
// backup_label is, on their way to the archive writer.
type headWriter struct {
	r *run
	w io.Writer
}

func (h *headWriter) Write(p []byte) (int, error) {
	if len(h.r.head) < labelPrefix {
		n := min(len(p), labelPrefix-len(h.r.head))
		h.r.head = append(h.r.head, p[:n]...)
	}
	return h.w.Write(p)
}
