// Package crilog writes and reads container logs in the CRI log format, one
// line per record:
//
//	2016-10-06T00:17:09.669794202Z stdout F a full line
//	2016-10-06T00:17:09.669794203Z stderr P the first part of a long line
//
// The writer is what containerd's and CRI-O's log redirection does; the reader
// is the kubelet's (k8s.io/cri-client/pkg/logs) behind `kubectl logs`.
package crilog

import (
	"bytes"
	"io"

	"k8s.io/utils/clock"
)

const (
	// Stdout and Stderr name the stream of a record.
	Stdout = "stdout"
	Stderr = "stderr"

	// TimeFormat is RFC 3339 with nanoseconds at a fixed width, so that
	// records sort as text; any RFC3339Nano time is accepted when reading.
	TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

	// MaxLineSize is the longest content of one record; longer lines are
	// split into partial records (containerd's limit).
	MaxLineSize = 16 * 1024

	tagFull    = 'F'
	tagPartial = 'P'
)

// NewWriter returns a writer that splits what is written into lines and
// writes each to w as one record of stream, timestamped with c.Now() when
// the line is complete. Each record is one Write to w, so writers of
// different streams can share w if w serializes Writes. Close writes a last
// incomplete line as a partial record; it does not close w.
func NewWriter(w io.Writer, stream string, c clock.PassiveClock) io.WriteCloser {
	return &writer{w: w, stream: stream, clock: c}
}

type writer struct {
	w      io.Writer
	stream string
	clock  clock.PassiveClock
	// pending holds the start of a line not yet ended by a newline.
	pending []byte
	record  []byte
}

func (w *writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			break
		}
		w.pending = append(w.pending, p[:i]...)
		p = p[i+1:]
		if err := w.flush(tagFull); err != nil {
			return 0, err
		}
	}
	// A line that keeps growing without a newline is written in parts.
	for len(w.pending) >= MaxLineSize {
		if err := w.emit(tagPartial, w.pending[:MaxLineSize]); err != nil {
			return 0, err
		}
		w.pending = w.pending[:copy(w.pending, w.pending[MaxLineSize:])]
	}
	return n, nil
}

// flush writes the pending line, in parts when it is too long.
func (w *writer) flush(tag byte) error {
	line := w.pending
	w.pending = w.pending[:0]
	for len(line) > MaxLineSize {
		if err := w.emit(tagPartial, line[:MaxLineSize]); err != nil {
			return err
		}
		line = line[MaxLineSize:]
	}
	return w.emit(tag, line)
}

func (w *writer) emit(tag byte, content []byte) error {
	r := w.clock.Now().UTC().AppendFormat(w.record[:0], TimeFormat)
	r = append(r, ' ')
	r = append(r, w.stream...)
	r = append(r, ' ', tag, ' ')
	r = append(r, content...)
	r = append(r, '\n')
	w.record = r
	_, err := w.w.Write(r)
	return err
}

// Close writes a last line that did not end in a newline as a partial
// record, as containerd does.
func (w *writer) Close() error {
	if len(w.pending) == 0 {
		return nil
	}
	return w.flush(tagPartial)
}
