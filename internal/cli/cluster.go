package cli

import (
	"context"
	"errors"
	"text/tabwriter"

	"github.com/coffer-dev/coffer/client"
)

// printCluster lists the nodes of a cluster (postgres storage): each one's
// address, seal state and which one leads. Without a token that may read
// sys/cluster it says only whether this node leads. A single server prints
// nothing.
func (e *env) printCluster(ctx context.Context, c *client.Client) {
	var cl *client.Cluster
	err := errors.New("no token")
	if c.Token() != "" {
		cl, err = c.Cluster(ctx)
	}
	if err != nil {
		ls, err := c.Leader(ctx)
		if err != nil || !ls.Clustered {
			return
		}
		if ls.Leader {
			e.printf("Leader:       this node\n")
		} else {
			e.printf("Leader:       not this node\n")
		}
		e.printf("              (a token with read on sys/cluster lists every node)\n")
		return
	}
	if len(cl.Nodes) == 0 || (len(cl.Nodes) == 1 && cl.Nodes[0].ID == "local") {
		return
	}
	leader := cl.Leader
	if leader == "" {
		leader = "(election in progress)"
	}
	e.printf("Leader:       %s\n\n", leader)
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	w.Write([]byte("NODE\tADDRESS\tSEALED\tLEADER\tALIVE\n"))
	for _, n := range cl.Nodes {
		id := n.ID
		if n.Self {
			id += " (this)"
		}
		w.Write([]byte(id + "\t" + n.APIAddr + "\t" + yesNo(n.Sealed) + "\t" + yesNo(n.Leader) + "\t" + yesNo(n.Alive) + "\n"))
	}
	w.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
