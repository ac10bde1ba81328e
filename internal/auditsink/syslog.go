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
// unix socket such as /dev/log. A unix socket is dialed as a datagram
// socket first (what /dev/log is), then as a stream socket, as log/syslog
// does. On a datagram socket (UDP, unixgram) each message is one datagram;
// on a unix stream socket each message ends with a newline (RFC 6587
// non-transparent framing, what syslog daemons expect there; the JSON body
// holds no raw newline).
type Syslog struct {
	Network string // "udp", "tcp" or "unix"
	Address string
	Tag     string // APP-NAME; default "coffer"

	mu      sync.Mutex // guards conn and connNet
	conn    net.Conn
	connNet string // the network conn was dialed on
}

const syslogPriority = 10*8 + 5 // authpriv.notice

// dial connects to the destination and returns the network it used.
func (s *Syslog) dial(ctx context.Context) (net.Conn, string, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if s.Network != "unix" {
		c, err := d.DialContext(ctx, s.Network, s.Address)
		return c, s.Network, err
	}
	c, err := d.DialContext(ctx, "unixgram", s.Address)
	if err == nil {
		return c, "unixgram", nil
	}
	c, serr := d.DialContext(ctx, "unix", s.Address)
	if serr != nil {
		return nil, "", fmt.Errorf("syslog socket %s: %w (as a stream socket: %w)", s.Address, err, serr)
	}
	return c, "unix", nil
}

// frame returns msg as written on a connection of network n.
func frame(n, msg string) string {
	switch n {
	case "tcp", "tcp4", "tcp6":
		return fmt.Sprintf("%d %s", len(msg), msg) // octet counting
	case "unix":
		return msg + "\n"
	}
	return msg // datagram: one message per datagram
}

// Send implements Sink.
func (s *Syslog) Send(ctx context.Context, recs []*audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, n, err := s.dial(ctx)
		if err != nil {
			return err
		}
		s.conn, s.connNet = c, n
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
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.conn.Write([]byte(frame(s.connNet, msg))); err != nil {
			s.conn.Close()
			s.conn = nil
			return err
		}
	}
	return nil
}
