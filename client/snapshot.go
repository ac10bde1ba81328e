package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Snapshot downloads a consistent backup of the server's storage into w.
// Values in it are encrypted as at rest; restoring it needs the unseal keys.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) error {
	return c.raw(ctx, "GET", "/v1/sys/snapshot", nil, w)
}

// RestoreSnapshot loads a backup into a fresh, uninitialized server, which
// is then sealed until unsealed with the snapshot's keys.
func (c *Client) RestoreSnapshot(ctx context.Context, data []byte) (*SealStatus, error) {
	var buf bytes.Buffer
	if err := c.raw(ctx, "POST", "/v1/sys/snapshot/restore", data, &buf); err != nil {
		return nil, err
	}
	var out struct {
		Seal SealStatus `json:"seal"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return &out.Seal, nil
}

// raw sends body as is and copies a 2xx answer to w.
func (c *Client) raw(ctx context.Context, method, path string, body []byte, w io.Writer) error {
	u := *c.base
	u.Path += path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("X-Coffer-Token", c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // snapshots can be large; ctx bounds them
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			return &Error{StatusCode: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &Error{StatusCode: resp.StatusCode, Code: "http_error", Message: http.StatusText(resp.StatusCode)}
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
