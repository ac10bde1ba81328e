package dbcred

// SetAfterSetPasswordForTest makes RotateRoot pass the outcome of its
// password change through fn, which may replace it: returning an error
// after the database committed simulates an answer lost on the way back.
// Call it before the Service is used concurrently.
func (s *Service) SetAfterSetPasswordForTest(fn func(error) error) { s.afterSetPassword = fn }

// RootRetryDelayForTest is the wait before the next scheduled root
// rotation after failures failures in a row.
var RootRetryDelayForTest = rootRetryDelay
