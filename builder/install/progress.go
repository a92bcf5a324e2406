package install

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// redraw is how often the progress bar is drawn on a terminal.
const redraw = 100 * time.Millisecond

// meter reports the progress of one transfer on Options.Log: a bar redrawn in place on a
// terminal, otherwise a log line at every tenth of the transfer (every 32 MiB when the size
// is unknown), so that journals and install logs stay short.
type meter struct {
	w     io.Writer
	tty   bool
	label string
	total int64 // -1: unknown
	n     int64
	next  int64 // log lines: the count at which the next one is written
	drawn time.Time
	start time.Time
}

func (o *Options) meter(label string, total int64) *meter {
	m := &meter{w: o.Log, tty: o.TTY, label: label, total: total, start: time.Now()}
	if m.w == nil {
		m.w = io.Discard
	}
	m.next = m.step()
	if !m.tty {
		fmt.Fprintf(m.w, "kairos-firmware install: %s: fetching %s\n", label, sizeOf(total))
	}
	return m
}

func (m *meter) step() int64 {
	if m.total > 0 {
		return max(m.total/10, 1)
	}
	return 32 << 20
}

// reader counts what is read through r and stops when ctx is done.
func (m *meter) reader(ctx context.Context, r io.Reader) io.Reader {
	return &meterReader{ctx: ctx, r: r, m: m}
}

type meterReader struct {
	ctx context.Context
	r   io.Reader
	m   *meter
}

func (r *meterReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	r.m.add(int64(n))
	return n, err
}

func (m *meter) add(n int64) {
	m.n += n
	if m.tty {
		if time.Since(m.drawn) >= redraw {
			m.draw()
		}
		return
	}
	if m.n >= m.next && (m.total < 0 || m.n < m.total) {
		fmt.Fprintf(m.w, "kairos-firmware install: %s: %s\n", m.label, m.status())
		for m.next <= m.n {
			m.next += m.step()
		}
	}
}

// done ends the report: the final state, or how far it got.
func (m *meter) done(err error) {
	took := time.Since(m.start).Round(time.Millisecond)
	switch {
	case m.tty:
		m.draw()
		fmt.Fprintln(m.w)
	case err != nil:
		fmt.Fprintf(m.w, "kairos-firmware install: %s: stopped after %s\n", m.label, sizeOf(m.n))
	default:
		fmt.Fprintf(m.w, "kairos-firmware install: %s: %s in %s\n", m.label, sizeOf(m.n), took)
	}
}

func (m *meter) status() string {
	if m.total <= 0 {
		return sizeOf(m.n)
	}
	return fmt.Sprintf("%d%% (%s of %s)", m.n*100/m.total, sizeOf(m.n), sizeOf(m.total))
}

// draw redraws the bar on the current terminal line.
func (m *meter) draw() {
	m.drawn = time.Now()
	if m.total <= 0 {
		fmt.Fprintf(m.w, "\r%s %s\033[K", m.label, sizeOf(m.n))
		return
	}
	const width = 30
	filled := int(min(m.n, m.total) * width / m.total)
	fmt.Fprintf(m.w, "\r%s [%s%s] %s\033[K", m.label, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), m.status())
}

func sizeOf(n int64) string {
	switch {
	case n < 0:
		return "unknown size"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}
