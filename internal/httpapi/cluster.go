package httpapi

import "github.com/coffer-dev/coffer/internal/cluster"

func (a *API) clusterRoutes() []route {
	return []route{
		// Public like seal-status: load balancers and `coffer status` read it
		// without a token. It shows node addresses and states, nothing stored.
		{"GET", "/v1/sys/cluster", Op{"sys.cluster", ""}, public, a.clusterStatus, nil},
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
