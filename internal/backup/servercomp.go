package backup

import (
	"compress/gzip"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// serverCompression splits the disk's server_compression setting
// ("gzip", "zstd:level=3", …) into BASE_BACKUP's COMPRESSION and
// COMPRESSION_DETAIL.
func serverCompression(s string) (method, detail string) {
	method, detail, _ = strings.Cut(s, ":")
	return method, detail
}

// archiveSuffixes are the names the server gives compressed archives.
var archiveSuffixes = map[string]string{".gz": "gzip", ".lz4": "lz4", ".zst": "zstd"}

// splitCompressed returns the tar name and the server's compression of an
// archive name such as "base.tar.gz".
func splitCompressed(name string) (tarName, method string) {
	for suf, m := range archiveSuffixes {
		if strings.HasSuffix(name, ".tar"+suf) {
			return strings.TrimSuffix(name, suf), m
		}
	}
	return name, ""
}

// decompressor turns the server-compressed bytes written to it back into
// the tar stream and feeds that to dst, on its own goroutine, through a
// pipe: memory stays at the decoder's window whatever the archive's size.
type decompressor struct {
	pw   *io.PipeWriter
	done chan error
}

func newDecompressor(method string, dst io.Writer) (*decompressor, error) {
	pr, pw := io.Pipe()
	d := &decompressor{pw: pw, done: make(chan error, 1)}
	go func() {
		err := func() error {
			var src io.Reader
			switch method {
			case "gzip":
				zr, err := gzip.NewReader(pr)
				if err != nil {
					return err
				}
				src = zr
			case "lz4":
				src = lz4.NewReader(pr)
			case "zstd":
				zr, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
				if err != nil {
					return err
				}
				defer zr.Close()
				src = zr
			default:
				return fmt.Errorf("%w: unknown server compression %q", ErrProtocol, method)
			}
			_, err := io.Copy(dst, src)
			return err
		}()
		if err != nil {
			err = fmt.Errorf("decompress %s archive from the server: %w", method, err)
		}
		pr.CloseWithError(err)
		d.done <- err
	}()
	return d, nil
}

func (d *decompressor) Write(p []byte) (int, error) { return d.pw.Write(p) }

// Close ends the input and waits for the tar stream to be written out.
func (d *decompressor) Close() error {
	d.pw.Close()
	return <-d.done
}

// Abort stops the decompressor after a failure elsewhere.
func (d *decompressor) Abort(err error) {
	d.pw.CloseWithError(err)
	<-d.done
}
