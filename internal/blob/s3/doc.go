// Package s3 is the blob store in S3-compatible object storage, with a
// small S3 client of its own on net/http: path-style requests
// (endpoint/bucket/key) signed with AWS Signature Version 4 (sign.go),
// sent and repeated by client.go, their XML answers read by xml.go.
//
// Keys are object names under an optional prefix. Create buffers up to one
// part (Options.PartSize, default 32 MiB):
//
//	object < PartSize   one PUT at Commit (Content-MD5)
//	object ≥ PartSize   CreateMultipartUpload when the first part is full;
//	                    each part is PUT (Content-MD5) while the next fills;
//	                    Commit sends the last part and completes the upload,
//	                    which is when the object appears; Abort (or any
//	                    failure) aborts the upload
//
// Memory per upload: at most 2 × PartSize (one part filling, one in
// flight). The largest object is MaxParts × PartSize (312.5 GiB at the
// default); Write fails with a message saying so past it.
//
// PutIfAbsent is one PUT with "If-None-Match: *": 412 → blob.ErrExists.
// OpenRange is one ranged GET, made before it returns; a stream that
// breaks is resumed from where it stopped, with If-Match on the ETag so a
// replaced object is noticed. List uses ListObjectsV2 and checks that the
// server's order is byte order.
//
// Requests carry "x-amz-content-sha256: UNSIGNED-PAYLOAD": a body's
// integrity rides on its Content-MD5, which is signed. An empty Region
// signs for us-east-1 (DefaultRegion); the bucket's region is not looked
// up.
//
// Retries. A request is sent up to 8 times (maxAttempts in client.go) on
// network errors, 5xx and throttling (503 SlowDown, 429, ...), with
// capped exponential backoff and jitter, about 8 s in all; its body is a
// byte slice, so it can be sent again. Every request here is safe to
// repeat: GET, HEAD, LIST, DELETE, the PUT of a whole small object or of
// one part, CreateMultipartUpload (a repeat may leave an empty upload for
// CleanTemp), and CompleteMultipartUpload (a repeat that finds the upload
// already completed is recognised by the ETag the parts make; a 200 whose
// body is an <Error> is a failure, repeated like a 5xx when its code says
// so). PutIfAbsent is the exception, sent once per try: a repeat after a
// lost reply would see its own object and report ErrExists.
// PutIfAbsent retries itself and settles such a 412 by comparing the
// stored bytes (see its comment). Multipart uploads of writers that
// crashed stay on the server until CleanTemp aborts them.
//
// The secret key is a Secret, which never prints.
package s3
