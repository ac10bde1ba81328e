package vaultapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// clusterName is what sys/health and sys/seal-status call the cluster.
const clusterName = "coffer"

// healthResponse is Vault's sys/health body.
type healthResponse struct {
	Initialized                bool   `json:"initialized"`
	Sealed                     bool   `json:"sealed"`
	Standby                    bool   `json:"standby"`
	PerformanceStandby         bool   `json:"performance_standby"`
	ReplicationPerformanceMode string `json:"replication_performance_mode"`
	ReplicationDRMode          string `json:"replication_dr_mode"`
	ServerTimeUTC              int64  `json:"server_time_utc"`
	Version                    string `json:"version"`
	ClusterName                string `json:"cluster_name,omitempty"`
	Enterprise                 bool   `json:"enterprise"`
	EchoDurationMillis         int64  `json:"echo_duration_ms"`
	ClockSkewMillis            int64  `json:"clock_skew_ms"`
}

// health answers like Vault: 200 when unsealed, 503 when sealed, 501 when
// not initialized, each overridable with activecode, sealedcode and
// uninitcode (the official client asks for 299 so that every state has a
// body). Coffer has no standbys, so standbycode and the like are accepted
// and never used. A storage that does not answer makes it a 503.
func (a *API) health(r *request) (*reply, error) {
	q := r.URL.Query()
	code := func(name string, def int) (int, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return 0, badRequest("%s must be an HTTP status code", name)
		}
		return n, nil
	}
	active, err := code("activecode", http.StatusOK)
	if err != nil {
		return nil, err
	}
	sealed, err := code("sealedcode", http.StatusServiceUnavailable)
	if err != nil {
		return nil, err
	}
	uninit, err := code("uninitcode", http.StatusNotImplemented)
	if err != nil {
		return nil, err
	}
	for name := range q {
		if strings.HasSuffix(name, "code") && name != "activecode" && name != "sealedcode" && name != "uninitcode" {
			if _, err := code(name, 0); err != nil {
				return nil, err
			}
		}
	}
	st, err := a.core.Status(r.ctx)
	if err != nil {
		return nil, err
	}
	body := healthResponse{Initialized: st.Initialized, Sealed: st.Sealed, ReplicationPerformanceMode: "disabled",
		ReplicationDRMode: "disabled", ServerTimeUTC: time.Now().Unix(), Version: a.version}
	status := active
	switch {
	case !st.Initialized:
		status = uninit
	case st.Sealed:
		status = sealed
	default:
		body.ClusterName = clusterName
	}
	if err := a.core.HealthCheck(r.ctx); err != nil {
		a.log.Warn("health check: storage does not answer", "request_id", r.id, "error", err)
		status = http.StatusServiceUnavailable
	}
	return &reply{status: status, raw: body}, nil
}

// sealStatusResponse is Vault's sys/seal-status body.
type sealStatusResponse struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name,omitempty"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type,omitempty"`
}

func (a *API) sealStatus(r *request) (*reply, error) {
	st, err := a.core.Status(r.ctx)
	if err != nil {
		return nil, err
	}
	out := sealStatusResponse{Type: st.Type, Initialized: st.Initialized, Sealed: st.Sealed, T: st.Threshold,
		N: st.Shares, Progress: st.Progress, Version: a.version}
	if st.Initialized && !st.Sealed {
		out.ClusterName = clusterName
	}
	return &reply{raw: out}, nil
}

// mountInfo answers the vault CLI's preflight question "which mount and KV
// version serve this path?" for paths on the KV mount; others are 404, which
// the CLI reads as "no such mount".
func (a *API) mountInfo(r *request) (*reply, error) {
	p := r.PathValue("path")
	if p != a.mount && !strings.HasPrefix(p, a.mount+"/") {
		return nil, errNotFound
	}
	return &reply{data: map[string]any{
		"path": a.mount + "/", "type": "kv", "description": "Coffer secrets (KV version 2 API)",
		"options": map[string]string{"version": "2"}, "accessor": "kv_coffer", "local": false, "seal_wrap": false,
		"external_entropy_access": false, "config": map[string]any{"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
	}}, nil
}
