package s3

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The example credentials and time of the S3 API reference's "Examples:
// Signature Calculations" (sig-v4-header-based-auth).
const (
	docAccessKey = "AKIAIOSFODNN7EXAMPLE"
	docSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	docHost      = "examplebucket.s3.amazonaws.com"
)

var docTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func docRequest(t *testing.T, method, path string, q url.Values, h map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, requestURL("https", docHost, path, q), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	return req
}

func signature(t *testing.T, req *http.Request) string {
	t.Helper()
	auth := req.Header.Get("Authorization")
	_, sig, ok := strings.Cut(auth, ", Signature=")
	if !ok {
		t.Fatalf("Authorization %q has no signature", auth)
	}
	return sig
}

// TestSignDocExamples signs the requests of the AWS documentation's
// examples and expects the signatures printed there.
func TestSignDocExamples(t *testing.T) {
	s := &signer{accessKey: docAccessKey, secretKey: docSecretKey, region: "us-east-1"}
	welcome := sha256.Sum256([]byte("Welcome to Amazon S3."))
	tests := []struct {
		name    string
		method  string
		path    string
		query   url.Values
		headers map[string]string
		payload string
		sig     string
		signed  string
	}{
		{
			name: "GET Object", method: "GET", path: "/test.txt",
			headers: map[string]string{"Range": "bytes=0-9"}, payload: emptySHA256,
			sig:    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
			signed: "host;range;x-amz-content-sha256;x-amz-date",
		},
		{
			name: "PUT Object", method: "PUT", path: "/test$file.text",
			headers: map[string]string{"Date": "Fri, 24 May 2013 00:00:00 GMT", "X-Amz-Storage-Class": "REDUCED_REDUNDANCY"},
			payload: hex.EncodeToString(welcome[:]),
			sig:     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
			signed:  "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
		},
		{
			name: "GET Bucket Lifecycle", method: "GET", path: "/", query: url.Values{"lifecycle": {""}},
			payload: emptySHA256,
			sig:     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
			signed:  "host;x-amz-content-sha256;x-amz-date",
		},
		{
			name: "GET Bucket (List Objects)", method: "GET", path: "/", query: url.Values{"prefix": {"J"}, "max-keys": {"2"}},
			payload: emptySHA256,
			sig:     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
			signed:  "host;x-amz-content-sha256;x-amz-date",
		},
	}
	for _, tt := range tests {
		req := docRequest(t, tt.method, tt.path, tt.query, tt.headers)
		s.sign(req, tt.payload, docTime)
		if got := signature(t, req); got != tt.sig {
			t.Errorf("%s: signature %s, want %s", tt.name, got, tt.sig)
		}
		want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=" + tt.signed + ", Signature=" + tt.sig
		if got := req.Header.Get("Authorization"); got != want {
			t.Errorf("%s: Authorization\n%s\nwant\n%s", tt.name, got, want)
		}
		if req.Header.Get("X-Amz-Date") != "20130524T000000Z" || req.Header.Get("X-Amz-Content-Sha256") != tt.payload {
			t.Errorf("%s: headers %v", tt.name, req.Header)
		}
	}
}

// TestSignStepByStep derives the signature of a request with an awkward
// key and query by hand, from the canonical request written out here in
// full, so that the encoding rules are checked, not just reproduced.
func TestSignStepByStep(t *testing.T) {
	s := &signer{accessKey: "AK", secretKey: "sk/+=", region: "eu-central-1"}
	key := "/bucket/pre fix/a+b%2F~ü.tar"
	q := url.Values{"uploadId": {"x y/z+"}, "partNumber": {"7"}}
	req := docRequest(t, "PUT", key, q, map[string]string{
		"Content-MD5":   "XrY7u+Ae7tCTyyK7j1rNww==",
		"If-None-Match": "*",
	})
	req.Host = "127.0.0.1:9000"
	now := time.Date(2024, 2, 29, 23, 59, 58, 0, time.FixedZone("x", 3600))
	s.sign(req, unsignedPayload, now)

	const wantURI = "/bucket/pre%20fix/a%2Bb%252F~%C3%BC.tar"
	if got := req.URL.EscapedPath(); got != wantURI {
		t.Fatalf("the request goes to %s, want %s", got, wantURI)
	}
	if got, want := req.URL.RawQuery, "partNumber=7&uploadId=x%20y%2Fz%2B"; got != want {
		t.Fatalf("query %s, want %s", got, want)
	}
	canonical := strings.Join([]string{
		"PUT",
		wantURI,
		"partNumber=7&uploadId=x%20y%2Fz%2B",
		"content-md5:XrY7u+Ae7tCTyyK7j1rNww==",
		"host:127.0.0.1:9000",
		"if-none-match:*",
		"x-amz-content-sha256:UNSIGNED-PAYLOAD",
		"x-amz-date:20240229T225958Z",
		"",
		"content-md5;host;if-none-match;x-amz-content-sha256;x-amz-date",
		"UNSIGNED-PAYLOAD",
	}, "\n")
	mac := func(k []byte, s string) []byte {
		h := hmac.New(sha256.New, k)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	hash := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n20240229T225958Z\n20240229/eu-central-1/s3/aws4_request\n" + hex.EncodeToString(hash[:])
	k := mac(mac(mac(mac([]byte("AWS4sk/+="), "20240229"), "eu-central-1"), "s3"), "aws4_request")
	want := hex.EncodeToString(mac(k, toSign))
	if got := signature(t, req); got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
	if auth := req.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AK/20240229/eu-central-1/s3/aws4_request, SignedHeaders=content-md5;host;if-none-match;x-amz-content-sha256;x-amz-date, ") {
		t.Errorf("Authorization %q", auth)
	}
}

func TestURIEncode(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"abc-._~XYZ019":    "abc-._~XYZ019",
		"a/b c":            "a/b%20c",
		"+%?#&=;:@,$!*'()": "%2B%25%3F%23%26%3D%3B%3A%40%2C%24%21%2A%27%28%29",
		"üñ\x01\x7f\xff":   "%C3%BC%C3%B1%01%7F%FF",
	} {
		if got := uriEncode(in, true); got != want {
			t.Errorf("uriEncode(%q, true) = %q, want %q", in, got, want)
		}
	}
	if got := uriEncode("a/b", false); got != "a%2Fb" {
		t.Errorf("uriEncode(a/b, false) = %q", got)
	}
}
