package s3

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The S3 responses read here, parsed into small structs. A response body
// is read whole into memory, at most these many bytes (a page of 1000
// keys of 1 KiB is about 1.3 MB of XML):
const (
	maxListBody  = 8 << 20
	maxSmallBody = 1 << 20 // Initiate, Complete, and error bodies
)

// errorBody is <Error>, the body of a failed request (and of a
// CompleteMultipartUpload that failed after its 200 was sent).
type errorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	Region    string   `xml:"Region"`
}

// parseError reads an <Error> body; ok is false when b is not one (a
// proxy's HTML page, an empty body).
func parseError(b []byte) (e errorBody, ok bool) {
	if xml.Unmarshal(b, &e) != nil {
		return errorBody{}, false
	}
	e.Code = oneLine(e.Code, 64)
	e.Message = oneLine(e.Message, 200)
	e.RequestID = oneLine(e.RequestID, 64)
	e.Region = oneLine(e.Region, 64)
	return e, true
}

// oneLine makes server text fit in one line of an error message.
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r < ' ' || r == 0x7f
	}), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && cut < len(s) && s[cut]&0xc0 == 0x80 {
			cut-- // not inside a UTF-8 sequence
		}
		s = s[:cut] + "…"
	}
	return s
}

// rootName returns the name of b's first element.
func rootName(b []byte) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err != nil {
			return "", fmt.Errorf("no XML element: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local, nil
		}
	}
}

// object is one entry of a listing.
type object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// listPage is one page of ListObjectsV2.
type listPage struct {
	Objects   []object
	Truncated bool
	Next      string // the continuation token of the next page
}

type listBucketResult struct {
	XMLName  xml.Name `xml:"ListBucketResult"`
	Contents []struct {
		Key          string `xml:"Key"`
		Size         string `xml:"Size"`
		LastModified string `xml:"LastModified"`
	} `xml:"Contents"`
	IsTruncated           string `xml:"IsTruncated"`
	NextContinuationToken string `xml:"NextContinuationToken"`
	EncodingType          string `xml:"EncodingType"`
}

// parseList reads a ListBucketResult (ListObjectsV2). Keys the server
// URL-encoded (EncodingType url, which List asks for: XML cannot carry
// every byte a key may hold) are decoded.
func parseList(b []byte) (listPage, error) {
	var r listBucketResult
	if err := xml.Unmarshal(b, &r); err != nil {
		return listPage{}, fmt.Errorf("malformed ListObjectsV2 response: %w", err)
	}
	var p listPage
	var err error
	if p.Truncated, err = parseBool(r.IsTruncated); err != nil {
		return listPage{}, fmt.Errorf("malformed ListObjectsV2 response: IsTruncated: %w", err)
	}
	p.Next = r.NextContinuationToken
	if p.Truncated && p.Next == "" {
		return listPage{}, errors.New("malformed ListObjectsV2 response: truncated, but no NextContinuationToken")
	}
	p.Objects = make([]object, 0, len(r.Contents))
	for _, c := range r.Contents {
		key, err := decodeName(c.Key, r.EncodingType)
		if err != nil {
			return listPage{}, fmt.Errorf("malformed ListObjectsV2 response: key %q: %w", c.Key, err)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(c.Size), 10, 64)
		if err != nil || size < 0 {
			return listPage{}, fmt.Errorf("malformed ListObjectsV2 response: key %q: size %q", key, c.Size)
		}
		mtime, err := parseTime(c.LastModified)
		if err != nil {
			return listPage{}, fmt.Errorf("malformed ListObjectsV2 response: key %q: LastModified %q", key, c.LastModified)
		}
		p.Objects = append(p.Objects, object{Key: key, Size: size, ModTime: mtime})
	}
	return p, nil
}

// pendingUpload is one entry of ListMultipartUploads.
type pendingUpload struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// uploadsPage is one page of ListMultipartUploads.
type uploadsPage struct {
	Uploads         []pendingUpload
	Truncated       bool
	NextKey, NextID string // the markers of the next page
}

type listUploadsResult struct {
	XMLName xml.Name `xml:"ListMultipartUploadsResult"`
	Uploads []struct {
		Key       string `xml:"Key"`
		UploadID  string `xml:"UploadId"`
		Initiated string `xml:"Initiated"`
	} `xml:"Upload"`
	IsTruncated        string `xml:"IsTruncated"`
	NextKeyMarker      string `xml:"NextKeyMarker"`
	NextUploadIDMarker string `xml:"NextUploadIdMarker"`
	EncodingType       string `xml:"EncodingType"`
}

// parseUploads reads a ListMultipartUploadsResult.
func parseUploads(b []byte) (uploadsPage, error) {
	var r listUploadsResult
	if err := xml.Unmarshal(b, &r); err != nil {
		return uploadsPage{}, fmt.Errorf("malformed ListMultipartUploads response: %w", err)
	}
	var p uploadsPage
	var err error
	if p.Truncated, err = parseBool(r.IsTruncated); err != nil {
		return uploadsPage{}, fmt.Errorf("malformed ListMultipartUploads response: IsTruncated: %w", err)
	}
	if p.NextKey, err = decodeName(r.NextKeyMarker, r.EncodingType); err != nil {
		return uploadsPage{}, fmt.Errorf("malformed ListMultipartUploads response: NextKeyMarker %q: %w", r.NextKeyMarker, err)
	}
	p.NextID = r.NextUploadIDMarker
	if p.Truncated && p.NextKey == "" && p.NextID == "" {
		return uploadsPage{}, errors.New("malformed ListMultipartUploads response: truncated, but no NextKeyMarker")
	}
	p.Uploads = make([]pendingUpload, 0, len(r.Uploads))
	for _, u := range r.Uploads {
		key, err := decodeName(u.Key, r.EncodingType)
		if err != nil {
			return uploadsPage{}, fmt.Errorf("malformed ListMultipartUploads response: key %q: %w", u.Key, err)
		}
		if key == "" || u.UploadID == "" {
			return uploadsPage{}, fmt.Errorf("malformed ListMultipartUploads response: an upload without key or UploadId (%q, %q)", key, u.UploadID)
		}
		t, err := parseTime(u.Initiated)
		if err != nil {
			return uploadsPage{}, fmt.Errorf("malformed ListMultipartUploads response: key %q: Initiated %q", key, u.Initiated)
		}
		p.Uploads = append(p.Uploads, pendingUpload{Key: key, UploadID: u.UploadID, Initiated: t})
	}
	return p, nil
}

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	UploadID string   `xml:"UploadId"`
}

// parseInitiate reads an InitiateMultipartUploadResult: the upload ID.
func parseInitiate(b []byte) (string, error) {
	var r initiateResult
	if err := xml.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("malformed CreateMultipartUpload response: %w", err)
	}
	if r.UploadID == "" {
		return "", errors.New("malformed CreateMultipartUpload response: no UploadId")
	}
	return r.UploadID, nil
}

type completeResult struct {
	XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
	ETag    string   `xml:"ETag"`
}

// parseComplete reads the 200 answer to CompleteMultipartUpload, which is
// either a CompleteMultipartUploadResult (the object's ETag) or, when the
// server failed after it started answering, an <Error>: then failed is
// set and e says why.
func parseComplete(b []byte) (etag string, e errorBody, failed bool, err error) {
	root, err := rootName(b)
	if err != nil {
		return "", errorBody{}, false, fmt.Errorf("malformed CompleteMultipartUpload response: %w", err)
	}
	switch root {
	case "Error":
		e, ok := parseError(b)
		if !ok {
			return "", errorBody{}, false, errors.New("malformed CompleteMultipartUpload response: an unreadable <Error>")
		}
		return "", e, true, nil
	case "CompleteMultipartUploadResult":
		var r completeResult
		if err := xml.Unmarshal(b, &r); err != nil {
			return "", errorBody{}, false, fmt.Errorf("malformed CompleteMultipartUpload response: %w", err)
		}
		return r.ETag, errorBody{}, false, nil
	}
	return "", errorBody{}, false, fmt.Errorf("malformed CompleteMultipartUpload response: <%s>, want <CompleteMultipartUploadResult>", oneLine(root, 64))
}

// completeRequest is the body of CompleteMultipartUpload.
type completeRequest struct {
	XMLName xml.Name       `xml:"CompleteMultipartUpload"`
	Parts   []completePart `xml:"Part"`
}

type completePart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
}

// decodeName undoes EncodingType url: S3 encodes names like a form, '+'
// for a space.
func decodeName(s, encoding string) (string, error) {
	switch encoding {
	case "":
		return s, nil
	case "url":
		return url.QueryUnescape(s)
	}
	return "", fmt.Errorf("unknown EncodingType %q", oneLine(encoding, 32))
}

func parseBool(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fmt.Errorf("%q is not true or false", oneLine(s, 32))
}

// parseTime reads an ISO 8601 time as S3 writes it
// (2009-10-12T17:50:30.000Z).
func parseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
}
