package cli

import (
	"context"
	"text/tabwriter"

	"github.com/coffer-dev/coffer/client"
)

// printCluster lists the nodes of a cluster (postgres storage): each one's
// address, seal state and which one leads. A single server prints nothing.
func (e *env) printCluster(ctx context.Context, c *client.Client) {
	cl, err := c.Cluster(ctx)
	if err != nil || len(cl.Nodes) == 0 || (len(cl.Nodes) == 1 && cl.Nodes[0].ID == "local") {
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
