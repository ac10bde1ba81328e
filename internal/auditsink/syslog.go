package auditsink

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
)

// Syslog sends each record as an RFC 5424 message (facility authpriv,
// severity notice) over UDP, TCP (octet-counted framing, RFC 6587) or a
// unix socket such as /dev/log.
type Syslog struct {
	Network string // "udp", "tcp" or "unix"
	Address string
	Tag     string // APP-NAME; default "coffer"

	mu   sync.Mutex // guards conn
	conn net.Conn
}

const syslogPriority = 10*8 + 5 // authpriv.notice

// Send implements Sink.
func (s *Syslog) Send(ctx context.Context, recs []*audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, s.Network, s.Address)
		if err != nil {
			return err
		}
		s.conn = c
	}
	host, _ := os.Hostname()
	tag := s.Tag
	if tag == "" {
		tag = "coffer"
	}
	for _, r := range recs {
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("<%d>1 %s %s %s %d audit - %s", syslogPriority, r.Time.UTC().Format(time.RFC3339Nano), host, tag, os.Getpid(), body)
		if s.Network == "tcp" {
			msg = fmt.Sprintf("%d %s", len(msg), msg)
		}
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.conn.Write([]byte(msg)); err != nil {
			s.conn.Close()
			s.conn = nil
			return err
		}
	}
	return nil
}
