package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/snapshot"
)

// MaxSnapshotSize caps an uploaded snapshot.
const MaxSnapshotSize = 4 << 30

func (a *API) snapshotRoutes() []route {
	return []route{
		{"GET", "/v1/sys/snapshot", Op{"sys.snapshot", "admin"}, authenticated, a.snapshotSave, fixed("sys/snapshot")},
		// No token exists on the fresh server a snapshot is restored into;
		// Restore refuses any server that was ever initialized.
		{"POST", "/v1/sys/snapshot/restore", Op{"sys.snapshot-restore", ""}, public, a.snapshotRestore, nil},
	}
}

// bodyLimit is the request body cap of an operation.
func bodyLimit(op string) int64 {
	if op == "sys.snapshot-restore" {
		return MaxSnapshotSize
	}
	return MaxBodySize
}

// snapshotSave streams a consistent backup. It is buffered first so that a
// failure midway is an error status, not a truncated 200.
func (a *API) snapshotSave(r *request) (any, error) {
	var buf bytes.Buffer
	if _, err := a.core.Snapshot(r.ctx, &buf); err != nil {
		return nil, err
	}
	return rawResponse(func(w http.ResponseWriter) int {
		// A large snapshot may take longer to send than the server's write
		// timeout allows an ordinary answer.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(buf.Len()/(1<<20)+60) * time.Second))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="coffer.snapshot"`)
		w.WriteHeader(http.StatusOK)
		w.Write(buf.Bytes())
		return http.StatusOK
	}), nil
}

func (a *API) snapshotRestore(r *request) (any, error) {
	// Refuse an initialized server before reading a byte of what may be
	// gigabytes from a caller nobody authenticated.
	if st, err := a.core.Status(r.ctx); err != nil {
		return nil, err
	} else if st.Initialized {
		return nil, core.ErrRestoreInitialized
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	n, err := a.core.Restore(r.ctx, data)
	if err != nil {
		return nil, err
	}
	st, _ := a.core.Status(r.ctx)
	return map[string]any{"records": n, "seal": st}, nil
}

func snapshotError(err error) (int, string, string, bool) {
	switch {
	case errors.Is(err, snapshot.ErrCorrupt):
		return http.StatusBadRequest, "invalid_snapshot", err.Error(), true
	case errors.Is(err, core.ErrRestoreInitialized):
		return http.StatusConflict, "already_initialized", err.Error(), true
	case errors.Is(err, core.ErrNoSnapshots):
		return http.StatusNotImplemented, "not_supported", err.Error(), true
	}
	return 0, "", "", false
}
