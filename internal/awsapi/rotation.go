package awsapi

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/rotation"
)

// rotateSecretIn is the input of RotateSecret.
type rotateSecretIn struct {
	secretRef
	ClientRequestToken             *string        `json:"ClientRequestToken"`
	ExternalSecretRotationMetadata any            `json:"ExternalSecretRotationMetadata"`
	ExternalSecretRotationRoleArn  *string        `json:"ExternalSecretRotationRoleArn"`
	RotateImmediately              *bool          `json:"RotateImmediately"`
	RotationLambdaARN              *string        `json:"RotationLambdaARN"`
	RotationRules                  *rotationRules `json:"RotationRules"`
}

type rotationRules struct {
	AutomaticallyAfterDays *int64  `json:"AutomaticallyAfterDays"`
	Duration               *string `json:"Duration"`
	ScheduleExpression     *string `json:"ScheduleExpression"`
}

type rotateSecretOut struct {
	ARN       string `json:"ARN"`
	Name      string `json:"Name"`
	VersionId string `json:"VersionId,omitempty"`
}

var rateExpr = regexp.MustCompile(`^rate\((\d{1,4}) (hours?|days?)\)$`)

// schedule turns AWS rotation rules into a Coffer schedule.
func (r *rotationRules) schedule() (string, error) {
	switch {
	case r.AutomaticallyAfterDays != nil && r.ScheduleExpression != nil:
		return "", invalidParameter("give AutomaticallyAfterDays or ScheduleExpression, not both")
	case r.AutomaticallyAfterDays != nil:
		if d := *r.AutomaticallyAfterDays; d < 1 || d > 1000 {
			return "", invalidParameter("AutomaticallyAfterDays must be between 1 and 1000")
		}
		return "every " + strconv.FormatInt(*r.AutomaticallyAfterDays, 10) + "d", nil
	case r.ScheduleExpression != nil:
		m := rateExpr.FindStringSubmatch(*r.ScheduleExpression)
		if m == nil {
			return "", invalidParameter("Coffer accepts ScheduleExpression rate(N days) or rate(N hours); for cron schedules use coffer rotation set --cron")
		}
		return "every " + m[1] + m[2][:1], nil
	}
	return "", nil
}

// rotateSecret sets the rotation schedule (RotationRules) and, unless
// RotateImmediately is false, rotates now with the secret's rotation
// policy. Coffer runs no Lambda functions: the rotator is configured with
// coffer rotation set (webhook plays the part of a rotation function).
func (a *API) rotateSecret(c *call, in *rotateSecretIn, name string) (any, error) {
	if (in.RotationLambdaARN != nil && *in.RotationLambdaARN != "") || in.ExternalSecretRotationRoleArn != nil || in.ExternalSecretRotationMetadata != nil {
		return nil, invalidRequest("Coffer runs no Lambda functions or external rotation roles: configure a rotator (password, postgresql, mysql or webhook) with coffer rotation set; see docs/rotation.md")
	}
	if in.RotationRules != nil && in.RotationRules.Duration != nil {
		return nil, invalidParameter("RotationRules.Duration (a rotation window) is not supported; use a policy's jitter")
	}
	actor := ""
	if c.principal != nil {
		actor = c.principal.Name
	}
	eng := a.core.Rotation
	if in.RotationRules != nil {
		sch, err := in.RotationRules.schedule()
		if err != nil {
			return nil, err
		}
		if sch != "" {
			if err := a.authorize(c, name, "update"); err != nil {
				return nil, err
			}
			if _, err := eng.SetSchedule(c.ctx, name, sch, actor); err != nil {
				return nil, rotationErr(err)
			}
		}
	}
	m, err := a.core.Secrets.Describe(c.ctx, name)
	if err != nil {
		return nil, err
	}
	out := &rotateSecretOut{ARN: a.arn(m), Name: m.Name}
	if in.RotateImmediately != nil && !*in.RotateImmediately {
		if _, err := eng.Status(c.ctx, name); err != nil {
			return nil, rotationErr(err)
		}
		return out, nil
	}
	st, err := eng.Rotate(c.ctx, name, rotation.RotateOptions{Actor: actor})
	if err != nil {
		return nil, rotationErr(err)
	}
	if m, err = a.core.Secrets.Describe(c.ctx, name); err != nil {
		return nil, err
	}
	n := st.LastVersion
	if st.Status != rotation.StatusScheduled || st.LastError != "" {
		if st.Status != rotation.StatusRetrying {
			return nil, invalidRequest("The rotation failed: %s", st.LastError)
		}
		n = st.PendingVersion // AWS reports the pending version of a rotation in progress
	}
	for i := range m.Versions {
		if m.Versions[i].Number == n {
			out.VersionId = versionID(m.ID, &m.Versions[i])
		}
	}
	return out, nil
}

// cancelRotateSecret turns rotation off, as AWS does: the rotation in
// progress is cancelled (rolled back when current still works on the
// target) and the secret's own policy is removed.
func (a *API) cancelRotateSecret(c *call, _ *secretRef, name string) (any, error) {
	actor := ""
	if c.principal != nil {
		actor = c.principal.Name
	}
	if _, err := a.core.Rotation.Cancel(c.ctx, name, actor); err != nil && !errors.Is(err, rotation.ErrNotRotating) {
		return nil, rotationErr(err)
	}
	if err := a.core.Rotation.DeletePolicy(c.ctx, name); err != nil && !errors.Is(err, rotation.ErrNoPolicy) {
		return nil, rotationErr(err)
	}
	m, err := a.core.Secrets.Describe(c.ctx, name)
	if err != nil {
		return nil, err
	}
	return &rotateSecretOut{ARN: a.arn(m), Name: m.Name}, nil
}

// rotationErr maps the rotation engine's errors to AWS errors.
func rotationErr(err error) error {
	switch {
	case errors.Is(err, rotation.ErrNoPolicy):
		return invalidRequest("The secret has no rotation policy in Coffer: set one with coffer rotation set %s", "NAME --rotator ...")
	case errors.Is(err, rotation.ErrBusy):
		return invalidRequest("A previous rotation isn't complete. That rotation will be reattempted.")
	}
	return fmt.Errorf("rotation: %w", err)
}

// rotationRulesOut is DescribeSecret's RotationRules.
type rotationRulesOut struct {
	AutomaticallyAfterDays int64  `json:"AutomaticallyAfterDays,omitempty"`
	ScheduleExpression     string `json:"ScheduleExpression,omitempty"`
}

// addRotation fills DescribeSecret's rotation fields from the secret's
// rotation policy and state, if any.
func (a *API) addRotation(c *call, out *describeSecretOut, name string) {
	st, err := a.core.Rotation.Status(c.ctx, name)
	if err != nil || st.Policy == nil {
		return
	}
	if st.State != nil {
		out.LastRotatedDate = epochPtr(st.State.LastRotatedAt)
	}
	sch := st.Policy.Schedule
	if sch == "" {
		return
	}
	out.RotationEnabled = true
	if st.State != nil {
		out.NextRotationDate = epochPtr(st.State.NextDue)
	}
	if d, err := rotation.ParseDuration(strings.TrimPrefix(sch, "every ")); err == nil && strings.HasPrefix(sch, "every ") && d%(24*time.Hour) == 0 {
		out.RotationRules = &rotationRulesOut{AutomaticallyAfterDays: int64(d / (24 * time.Hour))}
	} else {
		out.RotationRules = &rotationRulesOut{ScheduleExpression: sch}
	}
}
