package client

import (
	"context"
	"net/url"
	"time"
)

// ExposureInput reports that a secret's value leaked. It never carries the value.
type ExposureInput struct {
	Version  int    `json:"version,omitempty"`  // 0: unknown
	Source   string `json:"source,omitempty"`   // scanner, log, repository, chat, ticket or other
	Location string `json:"location,omitempty"` // where it was seen, e.g. a commit URL
	Note     string `json:"note,omitempty"`
}

// Exposure is a stored report.
type Exposure struct {
	ID         string    `json:"id"`
	Secret     string    `json:"secret"`
	Version    int       `json:"version,omitempty"`
	Source     string    `json:"source"`
	Location   string    `json:"location,omitempty"`
	Note       string    `json:"note,omitempty"`
	ReportedBy string    `json:"reported_by"`
	ReportedAt time.Time `json:"reported_at"`
}

// ReportExposure records that the secret name leaked. It needs create on
// sys/exposures/NAME, not access to the secret.
func (c *Client) ReportExposure(ctx context.Context, name string, in ExposureInput) (*Exposure, error) {
	var out Exposure
	return &out, c.do(ctx, "POST", "/v1/exposures/"+name, nil, in, &out)
}

// Exposures lists the reports about one secret, oldest first.
func (c *Client) Exposures(ctx context.Context, name string) ([]Exposure, error) {
	var out struct {
		Reports []Exposure `json:"reports"`
	}
	return out.Reports, c.do(ctx, "GET", "/v1/exposures/"+name, nil, nil, &out)
}

// AllExposures lists every report about secrets whose names start with
// prefix, in name then time order, fetching page after page.
func (c *Client) AllExposures(ctx context.Context, prefix string) ([]Exposure, error) {
	var all []Exposure
	cursor := ""
	for {
		var page struct {
			Reports []Exposure `json:"reports"`
			Next    string     `json:"next_cursor"`
		}
		q := url.Values{"prefix": {prefix}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := c.do(ctx, "GET", "/v1/exposures", q, nil, &page); err != nil {
			return all, err
		}
		all = append(all, page.Reports...)
		if page.Next == "" {
			return all, nil
		}
		cursor = page.Next
	}
}
