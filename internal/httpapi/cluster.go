package httpapi

import "github.com/coffer-dev/coffer/internal/cluster"

func (a *API) clusterRoutes() []route {
	return []route{
		// The node list names hosts, addresses and versions and reads the
		// registry: it needs a token. Load balancers and `coffer status`
		// without a token get /v1/sys/leader, which says only whether this
		// node leads and costs no database query.
		{"GET", "/v1/sys/cluster", Op{"sys.cluster", "read"}, authenticated, a.clusterStatus, fixed("sys/cluster")},
		{"GET", "/v1/sys/leader", Op{"sys.leader", ""}, public, a.leaderStatus, nil},
	}
}

// clusterBody is the wire shape of GET /v1/sys/cluster.
type clusterBody struct {
	Nodes  []cluster.Status `json:"nodes"`
	Leader string           `json:"leader"` // id of the leading node, "" during an election
}

func (a *API) clusterStatus(r *request) (any, error) {
	nodes, err := a.core.ClusterNodes(r.ctx)
	if err != nil {
		return nil, err
	}
	body := clusterBody{Nodes: nodes}
	for _, n := range nodes {
		if n.Leader {
			body.Leader = n.ID
		}
	}
	return body, nil
}

// leaderBody is the wire shape of GET /v1/sys/leader.
type leaderBody struct {
	Clustered bool `json:"clustered"` // the storage is shared with other nodes
	Leader    bool `json:"leader"`    // this node runs the background jobs
}

func (a *API) leaderStatus(r *request) (any, error) {
	clustered, leader := a.core.ClusterLeader()
	return leaderBody{Clustered: clustered, Leader: leader}, nil
}
