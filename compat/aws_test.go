package compat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// These tests drive Coffer's AWS Secrets Manager API (served under /aws)
// with the official AWS SDK for Go v2, authenticated with access keys made
// by `coffer aws-key create`. They use the dev server main_test.go starts,
// and names under awstest/ so as not to meet the Vault tests' secrets.

// awsSkipUnlessServed skips when the server does not serve /aws yet.
func awsSkipUnlessServed(t *testing.T) {
	t.Helper()
	dumpLogOnFailure(t)
	resp, err := http.Post(server.url+"/aws", "application/x-amz-json-1.1", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Amzn-Requestid") == "" {
		t.Skip("the server does not serve the AWS API at /aws: wire internal/awsapi into internal/server (see internal/awsapi's package doc)")
	}
	if err := exec.Command(server.bin, "aws-key", "--help").Run(); err != nil {
		t.Skip("the coffer binary has no aws-key command: register cli.awsKeyCommand in internal/cli/root.go")
	}
}

// awsCLI runs the coffer CLI with the root token and returns its output,
// or its error with the standard error.
func awsCLI(t testing.TB, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, server.bin, args...)
	cmd.Env = append(os.Environ(), "COFFER_ADDR="+server.url, "COFFER_TOKEN="+server.root)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("coffer %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func awsMustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := awsCLI(t, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// awsPolicy applies a policy from a file, as `coffer policy apply` does in CI.
func awsPolicy(t testing.TB, name, src string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name+".hcl"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	awsMustCLI(t, "policy", "apply", "-f", dir)
}

type awsKey struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// awsNewKey creates an access key with `coffer aws-key create`.
func awsNewKey(t testing.TB, name string, policies ...string) awsKey {
	t.Helper()
	args := []string{"aws-key", "create", "--name", name, "--json"}
	for _, p := range policies {
		args = append(args, "--policy", p)
	}
	var k awsKey
	if err := json.Unmarshal([]byte(awsMustCLI(t, args...)), &k); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.AccessKeyID, "CFRK") || len(k.AccessKeyID) != 20 || len(k.SecretAccessKey) != 40 {
		t.Fatalf("aws-key create = %+v", k)
	}
	return k
}

// awsClient is a Secrets Manager client the way an application builds one:
// static credentials and the endpoint http://HOST:PORT/aws.
func awsClient(k awsKey) *secretsmanager.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(k.AccessKeyID, k.SecretAccessKey, ""),
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(server.url + "/aws")
	})
}

const awsAdminPolicy = `path "awstest/*" {
  capabilities = ["admin"]
}
`

// awsAdmin returns a client whose key may do anything under awstest/.
func awsAdmin(t *testing.T) *secretsmanager.Client {
	t.Helper()
	awsSkipUnlessServed(t)
	awsPolicy(t, "aws-compat-admin", awsAdminPolicy)
	return awsClient(awsNewKey(t, "compat-admin", "aws-compat-admin"))
}

// awsCode returns the AWS error code of err ("" when it is not an API error).
func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestAWSCreateGetPutDescribe(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	name := "awstest/basic/db"
	c, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String("v1"), Description: aws.String("db password"),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("payments")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(c.ARN)
	prefix := "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + name + "-"
	if !strings.HasPrefix(arn, prefix) || len(arn) != len(prefix)+6 || aws.ToString(c.Name) != name {
		t.Fatalf("CreateSecret = ARN %q, Name %q", arn, aws.ToString(c.Name))
	}
	// The SDK sends a ClientRequestToken of its own; it becomes the VersionId.
	v1 := aws.ToString(c.VersionId)
	if len(v1) != 36 {
		t.Fatalf("VersionId = %q, want the SDK's UUID", v1)
	}
	for _, id := range []string{name, arn, "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + name} {
		g, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("GetSecretValue(%s): %v", id, err)
		}
		if aws.ToString(g.SecretString) != "v1" || aws.ToString(g.VersionId) != v1 || aws.ToString(g.ARN) != arn ||
			!slices.Equal(g.VersionStages, []string{"AWSCURRENT"}) || g.CreatedDate == nil || time.Since(*g.CreatedDate) > time.Minute {
			t.Fatalf("GetSecretValue(%s) = %+v", id, g)
		}
	}

	bin := []byte{0, 1, 2, 0xfe, 0xff}
	p, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	v2 := aws.ToString(p.VersionId)
	if !slices.Equal(p.VersionStages, []string{"AWSCURRENT"}) || v2 == v1 {
		t.Fatalf("PutSecretValue = %+v", p)
	}
	g, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil || !bytes.Equal(g.SecretBinary, bin) || g.SecretString != nil {
		t.Fatalf("binary GetSecretValue = %+v, %v", g, err)
	}
	g, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(g.SecretString) != "v1" || aws.ToString(g.VersionId) != v1 {
		t.Fatalf("AWSPREVIOUS = %+v, %v", g, err)
	}
	g, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(v1)})
	if err != nil || aws.ToString(g.SecretString) != "v1" {
		t.Fatalf("by VersionId = %+v, %v", g, err)
	}

	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.Description) != "db password" || aws.ToBool(d.RotationEnabled) || len(d.Tags) != 1 ||
		aws.ToString(d.Tags[0].Key) != "team" || d.CreatedDate == nil || d.LastChangedDate == nil ||
		!slices.Equal(d.VersionIdsToStages[v1], []string{"AWSPREVIOUS"}) || !slices.Equal(d.VersionIdsToStages[v2], []string{"AWSCURRENT"}) {
		t.Fatalf("DescribeSecret = %+v", d)
	}

	u, err := sm.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String(name), Description: aws.String("rotated"), SecretString: aws.String("v3")})
	if err != nil || aws.ToString(u.VersionId) == "" {
		t.Fatalf("UpdateSecret = %+v, %v", u, err)
	}
	g, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil || aws.ToString(g.SecretString) != "v3" {
		t.Fatalf("after UpdateSecret = %+v, %v", g, err)
	}

	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("awstest/missing")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("GetSecretValue of a missing secret = %v, want *types.ResourceNotFoundException", err)
	}
	_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("awstest/missing"), SecretString: aws.String("x")})
	if !errors.As(err, &nf) {
		t.Fatalf("PutSecretValue to a missing secret = %v, want *types.ResourceNotFoundException", err)
	}
	_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("x"), SecretBinary: []byte("y")})
	var ip *types.InvalidParameterException
	if !errors.As(err, &ip) {
		t.Fatalf("both values = %v, want *types.InvalidParameterException", err)
	}
}

func TestAWSIdempotency(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	name := "awstest/idem/key"
	tok := "0b1f5f2e-6a4c-4e7b-9d3a-1c2b3a4d5e6f"
	c, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("a"), ClientRequestToken: aws.String(tok)})
	if err != nil || aws.ToString(c.VersionId) != tok {
		t.Fatalf("CreateSecret = %+v, %v", c, err)
	}
	// A retried CreateSecret (same token, same value) succeeds; another
	// CreateSecret of the name does not.
	if c2, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("a"), ClientRequestToken: aws.String(tok)}); err != nil || aws.ToString(c2.VersionId) != tok {
		t.Fatalf("retried CreateSecret = %+v, %v", c2, err)
	}
	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("a")})
	var re *types.ResourceExistsException
	if !errors.As(err, &re) {
		t.Fatalf("CreateSecret of an existing name = %v, want *types.ResourceExistsException", err)
	}

	tok2 := "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	put := func(v string) (*secretsmanager.PutSecretValueOutput, error) {
		return sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(v), ClientRequestToken: aws.String(tok2)})
	}
	p1, err := put("b")
	if err != nil || aws.ToString(p1.VersionId) != tok2 {
		t.Fatalf("PutSecretValue = %+v, %v", p1, err)
	}
	p2, err := put("b")
	if err != nil || aws.ToString(p2.VersionId) != tok2 {
		t.Fatalf("retried PutSecretValue = %+v, %v", p2, err)
	}
	if _, err := put("c"); !errors.As(err, &re) {
		t.Fatalf("same token, other value = %v, want *types.ResourceExistsException", err)
	}
	l, err := sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(name), IncludeDeprecated: aws.Bool(true)})
	if err != nil || len(l.Versions) != 2 {
		t.Fatalf("versions after retries = %+v, %v; want 2", l, err)
	}
}

func TestAWSStageRollback(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	name := "awstest/stages/api-key"
	c, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("good")})
	if err != nil {
		t.Fatal(err)
	}
	good := aws.ToString(c.VersionId)
	p, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("bad")})
	if err != nil {
		t.Fatal(err)
	}
	bad := aws.ToString(p.VersionId)
	// A staged version does not become current.
	pend, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("next"), VersionStages: []string{"AWSPENDING", "canary"}})
	if err != nil || !slices.Equal(pend.VersionStages, []string{"AWSPENDING", "canary"}) {
		t.Fatalf("staged put = %+v, %v", pend, err)
	}
	g, _ := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("canary")})
	if aws.ToString(g.SecretString) != "next" {
		t.Fatalf("canary = %+v", g)
	}

	// Moving AWSCURRENT needs RemoveFromVersionId naming where it is.
	_, err = sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(good)})
	var ip *types.InvalidParameterException
	if !errors.As(err, &ip) || !strings.Contains(aws.ToString(ip.Message), "RemoveFromVersionId") {
		t.Fatalf("move without RemoveFromVersionId = %v, want *types.InvalidParameterException", err)
	}
	if _, err := sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(name), VersionStage: aws.String("AWSCURRENT"),
		MoveToVersionId: aws.String(good), RemoveFromVersionId: aws.String(bad)}); err != nil {
		t.Fatal(err)
	}
	g, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil || aws.ToString(g.SecretString) != "good" || aws.ToString(g.VersionId) != good {
		t.Fatalf("after rollback = %+v, %v", g, err)
	}
	g, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(g.VersionId) != bad {
		t.Fatalf("AWSPREVIOUS after rollback = %+v, %v", g, err)
	}
	// Removing a custom label.
	if _, err := sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(name), VersionStage: aws.String("canary"),
		RemoveFromVersionId: pend.VersionId}); err != nil {
		t.Fatal(err)
	}
	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("canary")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("removed label = %v, want *types.ResourceNotFoundException", err)
	}

	// ListSecretVersionIds agrees with GetSecretValue on every VersionId.
	var ids []string
	pg := secretsmanager.NewListSecretVersionIdsPaginator(sm, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(name), MaxResults: aws.Int32(1)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	sort.Strings(ids)
	want := []string{good, bad, aws.ToString(pend.VersionId)}
	sort.Strings(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("ListSecretVersionIds = %q, want %q", ids, want)
	}
}

func TestAWSListAndBatch(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	for _, s := range []struct{ name, team string }{
		{"awstest/list/a", "red"}, {"awstest/list/b", "blue"}, {"awstest/list/c", "red"}, {"awstest/list/d", "red"}, {"awstest/list/sub/e", "blue"},
	} {
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(s.name), SecretString: aws.String("v-" + s.name),
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String(s.team)}}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(filters ...types.Filter) []string {
		t.Helper()
		var names []string
		pg := secretsmanager.NewListSecretsPaginator(sm, &secretsmanager.ListSecretsInput{Filters: filters, MaxResults: aws.Int32(2)})
		for pg.HasMorePages() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.SecretList {
				if e.ARN == nil || e.SecretVersionsToStages == nil {
					t.Fatalf("entry = %+v", e)
				}
				names = append(names, aws.ToString(e.Name))
			}
		}
		return names
	}
	byName := types.Filter{Key: types.FilterNameStringTypeName, Values: []string{"awstest/list/"}}
	if got := list(byName); !slices.Equal(got, []string{"awstest/list/a", "awstest/list/b", "awstest/list/c", "awstest/list/d", "awstest/list/sub/e"}) {
		t.Fatalf("ListSecrets by name = %q", got)
	}
	if got := list(byName, types.Filter{Key: types.FilterNameStringTypeTagValue, Values: []string{"blue"}}); !slices.Equal(got, []string{"awstest/list/b", "awstest/list/sub/e"}) {
		t.Fatalf("ListSecrets by tag value = %q", got)
	}
	if got := list(byName, types.Filter{Key: types.FilterNameStringTypeName, Values: []string{"!awstest/list/sub"}}, types.Filter{Key: types.FilterNameStringTypeAll, Values: []string{"RED"}}); !slices.Equal(got, []string{"awstest/list/a", "awstest/list/c", "awstest/list/d"}) {
		t.Fatalf("ListSecrets negated = %q", got)
	}

	b, err := sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"awstest/list/a", "awstest/list/b", "awstest/list/missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.SecretValues) != 2 || aws.ToString(b.SecretValues[0].SecretString) != "v-awstest/list/a" || len(b.Errors) != 1 ||
		aws.ToString(b.Errors[0].ErrorCode) != "ResourceNotFoundException" || aws.ToString(b.Errors[0].SecretId) != "awstest/list/missing" {
		t.Fatalf("BatchGetSecretValue = %+v", b)
	}
	var got []string
	bp := secretsmanager.NewBatchGetSecretValuePaginator(sm, &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{byName}, MaxResults: aws.Int32(2)})
	for bp.HasMorePages() {
		page, err := bp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.SecretValues {
			got = append(got, aws.ToString(v.SecretString))
		}
	}
	if len(got) != 5 || got[4] != "v-awstest/list/sub/e" {
		t.Fatalf("BatchGetSecretValue with filters = %q", got)
	}
}

func TestAWSDeleteRestore(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	name := "awstest/delete/me"
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	var ip *types.InvalidParameterException
	if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(3)}); !errors.As(err, &ip) {
		t.Fatalf("RecoveryWindowInDays 3 = %v, want *types.InvalidParameterException", err)
	}
	d, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	if d.DeletionDate == nil || time.Until(*d.DeletionDate) < 7*24*time.Hour-time.Minute {
		t.Fatalf("DeletionDate = %v", d.DeletionDate)
	}
	_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var ir *types.InvalidRequestException
	if !errors.As(err, &ir) || aws.ToString(ir.Message) != "You can't perform this operation on the secret because it was marked for deletion." {
		t.Fatalf("GetSecretValue of a deleted secret = %v, want *types.InvalidRequestException", err)
	}
	if _, err := sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if g, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}); err != nil || aws.ToString(g.SecretString) != "v" {
		t.Fatalf("after RestoreSecret = %+v, %v", g, err)
	}
	if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("DescribeSecret after a forced delete = %v, want *types.ResourceNotFoundException", err)
	}
}

func TestAWSTags(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	name := "awstest/tags/x"
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v"),
		Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(name), Tags: []types.Tag{{Key: aws.String("b"), Value: aws.String("2")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String(name), TagKeys: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil || len(d.Tags) != 1 || aws.ToString(d.Tags[0].Key) != "b" || aws.ToString(d.Tags[0].Value) != "2" {
		t.Fatalf("tags = %+v, %v", d, err)
	}
}

func TestAWSGetRandomPassword(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	r, err := sm.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(48),
		ExcludePunctuation: aws.Bool(true), ExcludeCharacters: aws.String("0O1lI"), RequireEachIncludedType: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	pw := aws.ToString(r.RandomPassword)
	if len(pw) != 48 || strings.ContainsAny(pw, "0O1lI!#$%&*+-./:;<=>?@[]^_`{|}~") ||
		!strings.ContainsAny(pw, "abcdefghijk") && !strings.ContainsAny(pw, "mnopqrstuvwxyz") {
		t.Fatalf("RandomPassword = %q", pw)
	}
	if _, err := sm.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(5000)}); awsCode(err) != "InvalidParameterException" {
		t.Fatalf("PasswordLength 5000 = %v", err)
	}
}

func TestAWSUnsupportedOperations(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	id := aws.String("awstest/unsupported")
	// Rotation works (TestAWSRotateSecret) but runs no Lambda functions.
	_, err := sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: id, RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:000000000000:function:rotate")})
	var ir *types.InvalidRequestException
	if !errors.As(err, &ir) || !strings.Contains(aws.ToString(ir.Message), "Coffer runs no Lambda functions") {
		t.Fatalf("RotateSecret = %v", err)
	}
	calls := map[string]func() error{
		"GetResourcePolicy": func() error {
			_, err := sm.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: id})
			return err
		},
		"PutResourcePolicy": func() error {
			_, err := sm.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: id, ResourcePolicy: aws.String("{}")})
			return err
		},
		"DeleteResourcePolicy": func() error {
			_, err := sm.DeleteResourcePolicy(ctx, &secretsmanager.DeleteResourcePolicyInput{SecretId: id})
			return err
		},
		"ValidateResourcePolicy": func() error {
			_, err := sm.ValidateResourcePolicy(ctx, &secretsmanager.ValidateResourcePolicyInput{ResourcePolicy: aws.String("{}")})
			return err
		},
		"ReplicateSecretToRegions": func() error {
			_, err := sm.ReplicateSecretToRegions(ctx, &secretsmanager.ReplicateSecretToRegionsInput{SecretId: id,
				AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("eu-west-1")}}})
			return err
		},
		"RemoveRegionsFromReplication": func() error {
			_, err := sm.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: id, RemoveReplicaRegions: []string{"eu-west-1"}})
			return err
		},
		"StopReplicationToReplica": func() error {
			_, err := sm.StopReplicationToReplica(ctx, &secretsmanager.StopReplicationToReplicaInput{SecretId: id})
			return err
		},
	}
	for op, call := range calls {
		err := call()
		if !errors.As(err, &ir) {
			t.Errorf("%s = %v, want *types.InvalidRequestException", op, err)
			continue
		}
		if msg := aws.ToString(ir.Message); !strings.Contains(msg, "Coffer") {
			t.Errorf("%s message = %q", op, msg)
		}
	}
}

// TestAWSRotateSecret rotates through the SDK with a policy set by the CLI.
func TestAWSRotateSecret(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	id := aws.String("awstest/rotated")
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id, SecretString: aws.String("first")}); err != nil {
		t.Fatal(err)
	}
	awsMustCLI(t, "rotation", "set", "awstest/rotated", "--rotator", "password", "--option", "length=20")
	r, err := sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: id, RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id})
	if err != nil || len(aws.ToString(v.SecretString)) != 20 || aws.ToString(v.VersionId) != aws.ToString(r.VersionId) {
		t.Fatalf("after RotateSecret: %v %v", v, err)
	}
	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
	if err != nil || !aws.ToBool(d.RotationEnabled) || d.RotationRules == nil || aws.ToInt64(d.RotationRules.AutomaticallyAfterDays) != 30 || d.NextRotationDate == nil {
		t.Fatalf("DescribeSecret after RotateSecret: %+v, %v", d, err)
	}
	if _, err := sm.CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: id}); err != nil {
		t.Fatal(err)
	}
	if d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id}); err != nil || aws.ToBool(d.RotationEnabled) {
		t.Fatalf("DescribeSecret after CancelRotateSecret: %+v, %v", d, err)
	}
}

func TestAWSAccessDenied(t *testing.T) {
	admin := awsAdmin(t)
	ctx := context.Background()
	for _, n := range []string{"awstest/teams/a/db", "awstest/teams/b/db"} {
		if _, err := admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("v")}); err != nil {
			t.Fatal(err)
		}
	}
	awsPolicy(t, "aws-compat-team-a", `path "awstest/teams/a/*" {
  capabilities = ["read", "list"]
}
`)
	sm := awsClient(awsNewKey(t, "team-a", "aws-compat-team-a"))
	if g, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("awstest/teams/a/db")}); err != nil || aws.ToString(g.SecretString) != "v" {
		t.Fatalf("allowed read = %+v, %v", g, err)
	}
	_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("awstest/teams/b/db")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(ae.ErrorMessage(), "permission denied") {
		t.Fatalf("refused read = %v, want AccessDeniedException", err)
	}
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("awstest/teams/a/db"), SecretString: aws.String("x")}); awsCode(err) != "AccessDeniedException" {
		t.Fatalf("refused write = %v, want AccessDeniedException", err)
	}
	l, err := sm.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"awstest/teams/"}}}})
	if err != nil || len(l.SecretList) != 1 || aws.ToString(l.SecretList[0].Name) != "awstest/teams/a/db" {
		t.Fatalf("ListSecrets shows %+v, %v; want team a's secret only", l, err)
	}
}

func TestAWSCredentials(t *testing.T) {
	awsSkipUnlessServed(t)
	ctx := context.Background()
	awsPolicy(t, "aws-compat-admin", awsAdminPolicy)
	k := awsNewKey(t, "compat-creds", "aws-compat-admin")
	get := func(k awsKey) error {
		_, err := awsClient(k).ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(1)})
		return err
	}
	if err := get(k); err != nil {
		t.Fatal(err)
	}
	if err := get(awsKey{k.AccessKeyID, strings.ToUpper(k.SecretAccessKey[:1]) + "x" + k.SecretAccessKey[2:]}); awsCode(err) != "InvalidSignatureException" {
		t.Fatalf("wrong secret = %v, want InvalidSignatureException", err)
	}
	if err := get(awsKey{"CFRKAAAAAAAAAAAAAAAA", k.SecretAccessKey}); awsCode(err) != "UnrecognizedClientException" {
		t.Fatalf("unknown key = %v, want UnrecognizedClientException", err)
	}
	list := awsMustCLI(t, "aws-key", "list")
	if !strings.Contains(list, k.AccessKeyID) || strings.Contains(list, k.SecretAccessKey) {
		t.Fatalf("aws-key list = %q", list)
	}
	awsMustCLI(t, "aws-key", "delete", k.AccessKeyID)
	if err := get(k); awsCode(err) != "UnrecognizedClientException" {
		t.Fatalf("deleted key = %v, want UnrecognizedClientException", err)
	}
}

func TestAWSNativeInterop(t *testing.T) {
	sm := awsAdmin(t)
	ctx := context.Background()
	// Written with the native CLI, read with the SDK.
	awsMustCLI(t, "secret", "put", "awstest/native/text", "s3cr3t")
	awsMustCLI(t, "secret", "put", "awstest/native/json", `{"user":"app","port":5432}`, "--type", "json")
	bin := []byte{0xde, 0xad, 0xbe, 0xef, 0}
	if _, err := awsCLI(t, bin, "secret", "put", "awstest/native/bin", "-", "--type", "binary"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"awstest/native/text": "s3cr3t", "awstest/native/json": `{"user":"app","port":5432}`} {
		g, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil || aws.ToString(g.SecretString) != want || len(aws.ToString(g.VersionId)) != 36 {
			t.Fatalf("GetSecretValue(%s) = %+v, %v", name, g, err)
		}
	}
	g, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("awstest/native/bin")})
	if err != nil || !bytes.Equal(g.SecretBinary, bin) {
		t.Fatalf("binary = %+v, %v", g, err)
	}
	// The VersionId of a version written without a token is stable.
	d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("awstest/native/text")})
	if err != nil || !slices.Equal(d.VersionIdsToStages[aws.ToString(g2(t, sm, "awstest/native/text").VersionId)], []string{"AWSCURRENT"}) {
		t.Fatalf("DescribeSecret = %+v, %v", d, err)
	}
	// Written with the SDK, read with the native CLI.
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("awstest/native/from-sdk"), SecretString: aws.String("hello from the sdk")}); err != nil {
		t.Fatal(err)
	}
	if out := awsMustCLI(t, "secret", "get", "awstest/native/from-sdk"); strings.TrimSpace(out) != "hello from the sdk" {
		t.Fatalf("coffer secret get = %q", out)
	}
}

func g2(t *testing.T, sm *secretsmanager.Client, name string) *secretsmanager.GetSecretValueOutput {
	t.Helper()
	g, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}
