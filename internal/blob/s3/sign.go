package s3

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// AWS Signature Version 4, in the Authorization header, as the S3 API
// reference describes it ("Signature Calculations for the Authorization
// Header: Transferring Payload in a Single Chunk").
const (
	sigAlgorithm    = "AWS4-HMAC-SHA256"
	sigService      = "s3"
	amzDateLayout   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	// emptySHA256 is the SHA-256 of no bytes: the payload hash of a
	// request without a body.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// signer holds the credentials and the region requests are signed for.
type signer struct {
	accessKey string
	secretKey Secret
	region    string
}

// sign sets X-Amz-Date, X-Amz-Content-Sha256 (payloadHash: the hex
// SHA-256 of the body, or UNSIGNED-PAYLOAD) and Authorization on req.
// Every header already on req is signed, with Host: the caller sets only
// headers that go to the server as they are.
func (s *signer) sign(req *http.Request, payloadHash string, now time.Time) {
	now = now.UTC()
	stamp := now.Format(amzDateLayout)
	req.Header.Set("X-Amz-Date", stamp)
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	canonical, signed := canonicalRequest(req, payloadHash)
	scope := stamp[:8] + "/" + s.region + "/" + sigService + "/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	toSign := sigAlgorithm + "\n" + stamp + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := signingKey(s.secretKey, stamp[:8], s.region)
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", sigAlgorithm+" Credential="+s.accessKey+"/"+scope+
		", SignedHeaders="+signed+", Signature="+sig)
}

// signingKey derives the key of one day and region from the secret.
func signingKey(secret Secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret.Reveal()), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, sigService)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// canonicalRequest returns the canonical form of req and the list of its
// signed headers:
//
//	method \n URI \n query \n headers (name:value\n each) \n signed \n payload hash
func canonicalRequest(req *http.Request, payloadHash string) (string, string) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	type header struct{ name, value string }
	hs := []header{{"host", host}}
	for name, values := range req.Header {
		name = strings.ToLower(name)
		if name == "authorization" {
			continue
		}
		vs := make([]string, len(values))
		for i, v := range values {
			vs[i] = strings.Join(strings.Fields(v), " ")
		}
		hs = append(hs, header{name, strings.Join(vs, ",")})
	}
	slices.SortFunc(hs, func(a, b header) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	b.WriteString(req.Method)
	b.WriteByte('\n')
	b.WriteString(req.URL.EscapedPath())
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(req.URL.Query()))
	b.WriteByte('\n')
	names := make([]string, len(hs))
	for i, h := range hs {
		b.WriteString(h.name)
		b.WriteByte(':')
		b.WriteString(h.value)
		b.WriteByte('\n')
		names[i] = h.name
	}
	signed := strings.Join(names, ";")
	b.WriteByte('\n')
	b.WriteString(signed)
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), signed
}

// canonicalQuery encodes q sorted by name (then value), each name and
// value URI-encoded, "name=" for an empty value. Requests carry their
// query in exactly this form, so what is signed is what is sent.
func canonicalQuery(q url.Values) string {
	type pair struct{ k, v string }
	var ps []pair
	for k, vs := range q {
		for _, v := range vs {
			ps = append(ps, pair{uriEncode(k, false), uriEncode(v, false)})
		}
	}
	slices.SortFunc(ps, func(a, b pair) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// uriEncode percent-encodes every byte of s but the unreserved characters
// A-Z a-z 0-9 - . _ ~ (and '/' when keepSlash), in upper-case hex: S3's
// rule for the canonical URI (each path segment, keepSlash) and query.
func uriEncode(s string, keepSlash bool) string {
	const hexdig = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) && !(keepSlash && s[i] == '/') {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (keepSlash && c == '/') {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexdig[c>>4], hexdig[c&15])
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// requestURL is scheme://host/path?query with path URI-encoded the S3
// way and the query canonical.
func requestURL(scheme, host, path string, q url.Values) string {
	u := scheme + "://" + host + uriEncode(path, true)
	if len(q) > 0 {
		u += "?" + canonicalQuery(q)
	}
	return u
}
