package s3

import (
	"encoding/xml"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const listSeed = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken><Contents><Key>a%2Bb+c%25</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>x</Key><LastModified>2026-11-23T01:17:27Z</LastModified><Size>0</Size></Contents><EncodingType>url</EncodingType></ListBucketResult>`

const uploadsSeed = `<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>my-movie.m2ts</NextKeyMarker><NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker><MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated><Upload><Key>my divisor</Key><UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId><Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload></ListMultipartUploadsResult>`

// FuzzParseList: parseList never panics, and what it accepts is
// consistent and survives being written out (URL-encoded, as a server
// honouring encoding-type=url would) and read again.
func FuzzParseList(f *testing.F) {
	f.Add([]byte(listSeed))
	f.Add([]byte(strings.Replace(listSeed, "<EncodingType>url</EncodingType>", "", 1)))
	f.Add([]byte(`<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>`))
	f.Add([]byte(`<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>`))
	f.Add([]byte(`<Error><Code>NoSuchBucket</Code></Error>`))
	f.Add([]byte(`<ListBucketResult><Contents><Key>%zz</Key><Size>-1</Size></Contents><EncodingType>url</EncodingType></ListBucketResult>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseList(b)
		if err != nil {
			return
		}
		if p.Truncated && p.Next == "" {
			t.Fatal("truncated without a token")
		}
		var out listBucketResult
		out.EncodingType = "url"
		out.IsTruncated = fmt.Sprint(p.Truncated)
		out.NextContinuationToken = p.Next
		for _, o := range p.Objects {
			if o.Size < 0 {
				t.Fatalf("size %d", o.Size)
			}
			out.Contents = append(out.Contents, struct {
				Key          string `xml:"Key"`
				Size         string `xml:"Size"`
				LastModified string `xml:"LastModified"`
			}{url.QueryEscape(o.Key), fmt.Sprint(o.Size), o.ModTime.Format(time.RFC3339Nano)})
		}
		if !xmlSafe(p.Next) {
			return // XML cannot carry it back
		}
		enc, err := xml.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parseList(enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if q.Truncated != p.Truncated || q.Next != p.Next || len(q.Objects) != len(p.Objects) {
			t.Fatalf("round trip: %+v, want %+v", q, p)
		}
		for i := range q.Objects {
			a, b := p.Objects[i], q.Objects[i]
			if a.Key != b.Key || a.Size != b.Size || !a.ModTime.Equal(b.ModTime) {
				t.Fatalf("round trip: object %d: %+v, want %+v", i, b, a)
			}
		}
	})
}

// xmlSafe: s can be written to XML and read back unchanged.
func xmlSafe(s string) bool {
	var v struct {
		XMLName xml.Name `xml:"a"`
		S       string   `xml:"s"`
	}
	v.S = s
	b, err := xml.Marshal(v)
	if err != nil {
		return false
	}
	v.S = ""
	return xml.Unmarshal(b, &v) == nil && v.S == s
}

// FuzzParseUploads: likewise for ListMultipartUploads.
func FuzzParseUploads(f *testing.F) {
	f.Add([]byte(uploadsSeed))
	f.Add([]byte(`<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`))
	f.Add([]byte(`<ListMultipartUploadsResult><IsTruncated>true</IsTruncated><NextKeyMarker>a%20b</NextKeyMarker><EncodingType>url</EncodingType></ListMultipartUploadsResult>`))
	f.Add([]byte(`<ListMultipartUploadsResult><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseUploads(b)
		if err != nil {
			return
		}
		if p.Truncated && p.NextKey == "" && p.NextID == "" {
			t.Fatal("truncated without markers")
		}
		var out listUploadsResult
		out.EncodingType = "url"
		out.IsTruncated = fmt.Sprint(p.Truncated)
		out.NextKeyMarker = url.QueryEscape(p.NextKey)
		out.NextUploadIDMarker = p.NextID
		safe := xmlSafe(p.NextID)
		for _, u := range p.Uploads {
			if u.Key == "" || u.UploadID == "" {
				t.Fatalf("upload %+v", u)
			}
			safe = safe && xmlSafe(u.UploadID)
			out.Uploads = append(out.Uploads, struct {
				Key       string `xml:"Key"`
				UploadID  string `xml:"UploadId"`
				Initiated string `xml:"Initiated"`
			}{url.QueryEscape(u.Key), u.UploadID, u.Initiated.Format(time.RFC3339Nano)})
		}
		if !safe {
			return
		}
		enc, err := xml.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parseUploads(enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if q.Truncated != p.Truncated || q.NextKey != p.NextKey || q.NextID != p.NextID || len(q.Uploads) != len(p.Uploads) {
			t.Fatalf("round trip: %+v, want %+v", q, p)
		}
		for i := range q.Uploads {
			a, b := p.Uploads[i], q.Uploads[i]
			if a.Key != b.Key || a.UploadID != b.UploadID || !a.Initiated.Equal(b.Initiated) {
				t.Fatalf("round trip: upload %d: %+v, want %+v", i, b, a)
			}
		}
	})
}

// FuzzParseInitiate: an accepted answer has an upload ID, the one in it.
func FuzzParseInitiate(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>`))
	f.Add([]byte(`<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>`))
	f.Add([]byte(`<Error/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseInitiate(b)
		if err != nil {
			return
		}
		if id == "" {
			t.Fatal("accepted without an upload ID")
		}
		if !strings.Contains(string(b), "InitiateMultipartUploadResult") {
			t.Fatalf("accepted %q", b)
		}
	})
}

// FuzzParseComplete: an answer is a result, a reported failure or
// malformed, never two of these; a failure's text is one line.
func FuzzParseComplete(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://x/b/k</Location><Bucket>b</Bucket><Key>k</Key><ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag></CompleteMultipartUploadResult>`))
	f.Add([]byte("\n\n   <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error.\nPlease try again.</Message><RequestId>656c76696e6727732072657175657374</RequestId></Error>"))
	f.Add([]byte(`<Error>`))
	f.Add([]byte(`<Other/>`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		etag, e, failed, err := parseComplete(b)
		if failed && err != nil {
			t.Fatal("both failed and malformed")
		}
		if !failed && e != (errorBody{}) {
			t.Fatalf("error body %+v without failure", e)
		}
		if failed && etag != "" {
			t.Fatal("failed with an ETag")
		}
		if failed && !singleLine(e.Code+e.Message+e.RequestID+e.Region) {
			t.Fatalf("error text spans lines: %+v", e)
		}
		if err != nil && !singleLine(err.Error()) {
			t.Fatalf("error spans lines: %v", err)
		}
	})
}

// FuzzParseError: the text of an error body, when there is one, is one
// bounded line of valid UTF-8.
func FuzzParseError(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The resource you requested does not exist</Message><Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>`))
	f.Add([]byte(`<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>`))
	f.Add([]byte(`<html><body>502 Bad Gateway</body></html>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := parseError(b)
		if !ok {
			if e != (errorBody{}) {
				t.Fatalf("not an error body, but %+v", e)
			}
			return
		}
		for _, s := range []string{e.Code, e.Message, e.RequestID, e.Region} {
			if !singleLine(s) || !utf8.ValidString(s) {
				t.Fatalf("field %q", s)
			}
			if len(s) > 200+len("…") {
				t.Fatalf("field of %d bytes", len(s))
			}
		}
	})
}

func singleLine(s string) bool { return !strings.ContainsAny(s, "\r\n") }

// FuzzContentRange: what parseContentRange accepts is a range, and
// written back it reads the same.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-5/*", "bytes 9-0/10", "bytes 0-10/10", "bytes -1-2/3", "bytes 1-2", "bytes +1-2/3", "bytes 0-9223372036854775806/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, ok := parseContentRange(s)
		if !ok {
			return
		}
		if first < 0 || last < first || total < -1 || (total >= 0 && last >= total) {
			t.Fatalf("%q: %d-%d/%d", s, first, last, total)
		}
		back := fmt.Sprintf("bytes %d-%d/%d", first, last, total)
		if total < 0 {
			back = fmt.Sprintf("bytes %d-%d/*", first, last)
		}
		f2, l2, t2, ok := parseContentRange(back)
		if !ok || f2 != first || l2 != last || t2 != total {
			t.Fatalf("%q read back from %q as %d-%d/%d", back, s, f2, l2, t2)
		}
	})
}

func TestParseList(t *testing.T) {
	p, err := parseList([]byte(listSeed))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Truncated || p.Next != "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=" || len(p.Objects) != 2 {
		t.Fatalf("%+v", p)
	}
	if o := p.Objects[0]; o.Key != "a+b c%" || o.Size != 434234 || !o.ModTime.Equal(time.Date(2009, 10, 12, 17, 50, 30, 0, time.UTC)) {
		t.Errorf("%+v", o)
	}
	for _, bad := range []string{
		`<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>`,
		`<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>k</Key><Size>-1</Size><LastModified>2009-10-12T17:50:30.000Z</LastModified></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>yesterday</LastModified></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>%zz</Key></Contents><EncodingType>url</EncodingType></ListBucketResult>`,
		`<ListBucketResult><EncodingType>base64</EncodingType><Contents><Key>k</Key></Contents></ListBucketResult>`,
		`<Error><Code>x</Code></Error>`,
		`<ListBucketResult>`,
	} {
		if _, err := parseList([]byte(bad)); err == nil {
			t.Errorf("parseList(%s) succeeded", bad)
		} else if !strings.HasPrefix(err.Error(), "malformed ListObjectsV2 response") {
			t.Errorf("parseList(%s): %v", bad, err)
		}
	}
}

func TestParseComplete(t *testing.T) {
	etag, _, failed, err := parseComplete([]byte(`<CompleteMultipartUploadResult><ETag>"x-2"</ETag></CompleteMultipartUploadResult>`))
	if etag != `"x-2"` || failed || err != nil {
		t.Errorf("result: %q %v %v", etag, failed, err)
	}
	// AWS sends white space while it works, then the answer.
	_, e, failed, err := parseComplete([]byte("\n \n<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>try\nagain</Message></Error>"))
	if !failed || err != nil || e.Code != "InternalError" || e.Message != "try again" {
		t.Errorf("error: %+v %v %v", e, failed, err)
	}
	if _, _, failed, err := parseComplete([]byte(`<Other/>`)); failed || err == nil {
		t.Errorf("other root: %v %v", failed, err)
	}
}
