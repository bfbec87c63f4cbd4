package crilog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/log"
)

// forceCheckPeriod is how often a follower re-reads the file and asks whether
// the container still runs when no change was notified (the kubelet's value).
const forceCheckPeriod = time.Second

// ReadOptions select what ReadLogs copies, as v1.PodLogOptions does.
type ReadOptions struct {
	// Follow keeps reading as the file grows until Running reports false
	// and the file is drained, or the context ends.
	Follow bool
	// Tail is the number of lines to start from the end of the file; -1 means
	// all of them, 0 none. Partial records count as lines, as for the kubelet.
	Tail int64
	// Since drops records older than it; zero keeps all.
	Since time.Time
	// Timestamps prefixes each line with the time it was logged.
	Timestamps bool
	// LimitBytes stops after that many bytes of output; 0 or less means no limit.
	LimitBytes int64
	// Running reports whether the container still runs; nil means it does not.
	Running func() bool
}

var errLimitReached = errors.New("log output limit reached")

// ReadLogs copies the log at path to stdout and stderr by the stream of each
// record, joining partial records into their line. A nil writer drops its
// stream. Lines that are not CRI records are skipped.
func ReadLogs(ctx context.Context, path string, o ReadOptions, stdout, stderr io.Writer) error {
	// inotify follows the symlink itself, not the file it points to.
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("reading log %s: %w", path, err)
	}
	path = resolved
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading log %s: %w", path, err)
	}
	defer func() { f.Close() }()

	start, err := tailStart(f, o.Tail)
	if err != nil {
		return fmt.Errorf("reading log %s: finding the last %d lines: %w", path, o.Tail, err)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("reading log %s: %w", path, err)
	}

	out := &output{stdout: stdout, stderr: stderr, o: &o, remain: math.MaxInt64}
	if o.LimitBytes > 0 {
		out.remain = o.LimitBytes
	}
	// Without Follow, a file growing while it is read must not add lines
	// beyond the Tail asked for.
	limited := o.Tail >= 0 && !o.Follow
	left := o.Tail
	logger := log.FromContext(ctx)

	var w *watcher
	defer func() {
		if w != nil {
			w.close()
		}
	}()
	r := bufio.NewReader(f)
	drainThenStop := false
	// drainOld is set once the file was seen replaced, until the old one
	// has been read to its end once more.
	drainOld := false
	var rec record
	for {
		if limited && left <= 0 {
			return nil
		}
		// A long log may take a while even without Follow.
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := r.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading log %s: %w", path, err)
		}
		if err == io.EOF {
			if !o.Follow {
				if len(line) == 0 {
					return nil
				}
				// The writer has not finished the line: show what there is.
				logger.Debug("Incomplete line in log file", "path", path)
			} else {
				if drainThenStop {
					return nil
				}
				// Read the incomplete line again once it is complete.
				if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
					return fmt.Errorf("reading log %s: %w", path, err)
				}
				r.Reset(f)
				if w == nil {
					if w, err = newWatcher(path); err != nil {
						return fmt.Errorf("following log %s: %w", path, err)
					}
					// The file may have changed before the watch began.
					continue
				}
				if replaced(f, path) {
					if !drainOld {
						// Read what reached the old file between
						// the end just read and the replacement.
						drainOld = true
						continue
					}
					drainOld = false
					nf, err := os.Open(path)
					if err != nil && !errors.Is(err, os.ErrNotExist) {
						return fmt.Errorf("reading log %s: %w", path, err)
					}
					if err == nil {
						f.Close()
						f = nf
						r.Reset(f)
						continue
					}
				}
				if o.Running == nil || !o.Running() {
					// Whatever the container wrote is in the file by now.
					drainThenStop = true
					continue
				}
				if err := w.wait(ctx); err != nil {
					return fmt.Errorf("following log %s: %w", path, err)
				}
				continue
			}
		}
		if err := parse(line, &rec); err != nil {
			logger.Debug("Skipping a line that is not a CRI log record", "path", path, "error", err)
			continue
		}
		if err := out.write(&rec); err != nil {
			if errors.Is(err, errLimitReached) {
				return nil
			}
			return err
		}
		if limited {
			left--
		}
		if err == io.EOF && !o.Follow {
			return nil
		}
	}
}

// record is one parsed line of the log.
type record struct {
	timestamp time.Time
	stream    string
	partial   bool
	content   []byte
}

// parse parses a CRI record; content keeps the newline of a full record.
func parse(line []byte, rec *record) error {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return errors.New("no timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return fmt.Errorf("bad timestamp: %w", err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return errors.New("no stream")
	}
	if s := string(stream); s != Stdout && s != Stderr {
		return fmt.Errorf("unknown stream %q", stream)
	}
	tags, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return errors.New("no tag")
	}
	// Tags are colon separated for forward compatibility; the first says
	// whether the record is partial.
	first, _, _ := bytes.Cut(tags, []byte{':'})
	rec.timestamp = t
	rec.stream = string(stream)
	rec.partial = len(first) == 1 && first[0] == tagPartial
	if rec.partial {
		content = bytes.TrimSuffix(content, []byte{'\n'})
	}
	rec.content = content
	return nil
}

// output writes records to the stream writers under the options' limits.
type output struct {
	stdout, stderr io.Writer
	o              *ReadOptions
	remain         int64
	// midLine is set after a partial record of the stream, whose next
	// record continues the line and gets no timestamp prefix.
	midLine map[string]bool
}

func (w *output) write(rec *record) error {
	if rec.timestamp.Before(w.o.Since) {
		return nil
	}
	var dst io.Writer
	if rec.stream == Stdout {
		dst = w.stdout
	} else {
		dst = w.stderr
	}
	if dst == nil {
		return nil
	}
	if w.midLine == nil {
		w.midLine = map[string]bool{}
	}
	line := rec.content
	if w.o.Timestamps && !w.midLine[rec.stream] {
		prefixed := rec.timestamp.AppendFormat(make([]byte, 0, len(TimeFormat)+1+len(line)), TimeFormat)
		prefixed = append(prefixed, ' ')
		line = append(prefixed, line...)
	}
	w.midLine[rec.stream] = rec.partial
	if int64(len(line)) > w.remain {
		line = line[:w.remain]
	}
	n, err := dst.Write(line)
	w.remain -= int64(n)
	if err != nil {
		return err
	}
	if n < len(line) {
		return io.ErrShortWrite
	}
	if w.remain <= 0 {
		return errLimitReached
	}
	return nil
}

// tailStart returns the offset of the n-th line from the end of f, 0 when
// n < 0. An incomplete last line does not count.
func tailStart(f io.ReadSeeker, n int64) (int64, error) {
	if n < 0 {
		return 0, nil
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	const block = 4096
	buf := make([]byte, block)
	// Count newlines backwards; the n+1-th newline from the end ends the
	// line before the first one wanted.
	count := int64(0)
	for end := size; end > 0; {
		start := max(end-block, 0)
		chunk := buf[:end-start]
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(f, chunk); err != nil {
			return 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			count++
			if count > n {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// replaced reports whether path now names another file than f, as after
// log rotation. Comparing the files rather than watching for the new one
// also catches a replacement that happened before the watch began.
func replaced(f *os.File, path string) bool {
	open, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && !os.SameFile(open, now)
}

// watcher waits for changes in a file's directory through inotify, which
// also sees the file being replaced.
type watcher struct {
	f   *os.File
	buf []byte
}

func newWatcher(path string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	const mask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watching %s: %w", filepath.Dir(path), err)
	}
	// A non-blocking fd joins Go's poller, so reads honour deadlines.
	return &watcher{f: os.NewFile(uintptr(fd), "inotify"), buf: make([]byte, 4096)}, nil
}

// wait returns after a change in the directory, after forceCheckPeriod, or
// with ctx's error. Which change does not matter: the caller reads on.
func (w *watcher) wait(ctx context.Context) error {
	if err := w.f.SetReadDeadline(time.Now().Add(forceCheckPeriod)); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = w.f.SetReadDeadline(time.Unix(1, 0)) })
	_, err := w.f.Read(w.buf)
	stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("reading inotify events: %w", err)
	}
	return nil
}

func (w *watcher) close() { w.f.Close() }
