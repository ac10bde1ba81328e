package client

import (
	"context"
	"time"
)

// ClusterNode is one node of a cluster sharing a PostgreSQL storage.
type ClusterNode struct {
	ID        string    `json:"id"`
	APIAddr   string    `json:"api_addr"`
	Sealed    bool      `json:"sealed"`
	Leader    bool      `json:"leader"`
	Alive     bool      `json:"alive"` // heartbeat seen within seconds
	Self      bool      `json:"self"`  // the node that answered
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Cluster lists the nodes sharing the server's storage and names the leader.
type Cluster struct {
	Nodes  []ClusterNode `json:"nodes"`
	Leader string        `json:"leader"` // "" during an election
}

// Cluster returns every node, its seal state and the leader. A server
// without a cluster lists itself alone, as leader, with id "local". It
// needs a token with read on sys/cluster.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var out Cluster
	return &out, c.do(ctx, "GET", "/v1/sys/cluster", nil, nil, &out)
}

// LeaderStatus is what any caller, without a token, may learn of a node's
// part in a cluster.
type LeaderStatus struct {
	Clustered bool `json:"clustered"` // the storage is shared with other nodes
	Leader    bool `json:"leader"`    // this node runs the background jobs
}

// Leader reports whether the node that answers leads. It needs no token
// and works while sealed; Cluster, which lists every node, needs read on
// sys/cluster.
func (c *Client) Leader(ctx context.Context) (*LeaderStatus, error) {
	var out LeaderStatus
	return &out, c.do(ctx, "GET", "/v1/sys/leader", nil, nil, &out)
}
