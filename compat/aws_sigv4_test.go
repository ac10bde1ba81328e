package compat_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/coffer-dev/coffer/internal/awsapi/sigv4"
)

// TestAWSSigV4AgainstSDKSigner signs many varied requests with the AWS
// SDK's own signer and checks that Coffer's verifier accepts each, and
// refuses it once anything signed is changed. No server is needed.
func TestAWSSigV4AgainstSDKSigner(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	chars := "abcXYZ019-._~ /%+=&?:@!$'()*,;ሴ"
	word := func(n int) string {
		var b strings.Builder
		for range 1 + r.IntN(n) {
			b.WriteString(string([]rune(chars)[r.IntN(len([]rune(chars)))]))
		}
		return b.String()
	}
	for i := range 300 {
		body := []byte(fmt.Sprintf(`{"SecretId":%q}`, word(40)))
		path := "/aws"
		if i%3 == 1 {
			path = "/" + strings.ReplaceAll(word(10), "?", "") + "/aws"
		}
		target := "http://127.0.0.1:8210" + (&urlPath{path}).escaped()
		if i%4 == 2 {
			target += "?" + word(5) + "=" + word(5) + "&a=" + word(3)
		}
		req, err := http.NewRequest("POST", target, bytes.NewReader(body))
		if err != nil {
			continue // a random query the URL parser refuses
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
		req.Header.Set("X-Custom", "  "+strings.ReplaceAll(word(12), "\n", "")+"   x ")
		sum := sha256.Sum256(body)
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		creds := aws.Credentials{AccessKeyID: "CFRKABCDEFGHIJKLMNOP", SecretAccessKey: word(40)}
		// A signer per request: the SDK caches derived keys by access key id.
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "secretsmanager", "eu-central-1", at); err != nil {
			t.Fatal(err)
		}
		// What the server receives.
		in := httptest.NewRequest("POST", req.URL.RequestURI(), bytes.NewReader(body))
		in.Host = req.URL.Host
		in.Header = req.Header.Clone()
		in.Header.Set("Content-Length", fmt.Sprint(len(body)))

		s, err := sigv4.Parse(in, "secretsmanager", at.Add(time.Minute), 0)
		if err != nil {
			t.Fatalf("request %d: Parse: %v\n%s", i, err, req.Header.Get("Authorization"))
		}
		if err := s.Verify(in, req.URL.EscapedPath(), body, creds.SecretAccessKey); err != nil {
			t.Fatalf("request %d (%s): Verify: %v", i, req.URL.RequestURI(), err)
		}
		if err := s.Verify(in, req.URL.EscapedPath(), append(body, ' '), creds.SecretAccessKey); err == nil {
			t.Fatalf("request %d: a changed body verified", i)
		}
		in.Header.Set("X-Custom", "changed")
		if err := s.Verify(in, req.URL.EscapedPath(), body, creds.SecretAccessKey); err == nil {
			t.Fatalf("request %d: a changed header verified", i)
		}
	}
}

type urlPath struct{ p string }

// escaped percent-encodes a path the way url.URL.EscapedPath would.
func (u *urlPath) escaped() string {
	r, _ := http.NewRequest("GET", "http://h", nil)
	r.URL.Path = u.p
	return r.URL.EscapedPath()
}
