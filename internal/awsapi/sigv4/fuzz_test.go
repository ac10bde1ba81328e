package sigv4

import (
	"strings"
	"testing"
)

// FuzzParseAuthorization feeds the Authorization header parser arbitrary
// input: it must never panic, and whatever it accepts must be well formed.
func FuzzParseAuthorization(f *testing.F) {
	seeds := []string{
		// The AWS test suite's header.
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
		// What aws-sdk-go-v2 sends to Secrets Manager.
		sdkVectors[0].authz,
		// No spaces after commas.
		"AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request,SignedHeaders=host,Signature=" + strings.Repeat("0", 64),
		// Empty parts, repeated separators and stray equals signs.
		"AWS4-HMAC-SHA256 ,,,",
		"AWS4-HMAC-SHA256 Credential==, SignedHeaders==, Signature==",
		"AWS4-HMAC-SHA256 Credential=////, SignedHeaders=;;;, Signature=",
		// Another algorithm and another scheme.
		"AWS4-ECDSA-P256-SHA256 Credential=x",
		"Bearer cft_abc",
		// Non-ASCII and control bytes.
		"AWS4-HMAC-SHA256 Credential=ሴ/20150830/us-east-1/service/aws4_request",
		"AWS4-HMAC-SHA256 Credential=\x00/\xff/\n/\t/aws4_request",
		"",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err != nil {
			if a != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if a.AccessKeyID == "" || len(a.Date) != 8 || a.Region == "" || a.Service == "" {
			t.Fatalf("accepted an incomplete credential: %+v", a)
		}
		if len(a.Signature) != 32 {
			t.Fatalf("accepted a %d-byte signature", len(a.Signature))
		}
		if len(a.SignedHeaders) == 0 {
			t.Fatal("accepted no signed headers")
		}
		for i, sh := range a.SignedHeaders {
			if sh == "" || strings.ToLower(sh) != sh || (i > 0 && a.SignedHeaders[i-1] >= sh) {
				t.Fatalf("accepted signed headers %q", a.SignedHeaders)
			}
		}
		if !strings.HasPrefix(h, Algorithm+" ") {
			t.Fatal("accepted another algorithm")
		}
	})
}
