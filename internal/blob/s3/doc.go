// Package s3 is the blob store in S3-compatible object storage, through
// minio-go.
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
// Retries. minio-go retries a request up to 10 times on network errors,
// 5xx and throttling when its body can be replayed; every request here is
// safe to repeat: GET, HEAD, LIST, DELETE, the PUT of a whole small object
// or of one part, and CompleteMultipartUpload (a repeat that finds the
// upload already completed is recognised by the ETag the parts make).
// PutIfAbsent is the exception, sent without minio's retries: a repeat
// after a lost reply would see its own object and report ErrExists.
// PutIfAbsent retries itself and settles such a 412 by comparing the
// stored bytes (see its comment). Multipart uploads of writers that
// crashed stay on the server until CleanTemp aborts them.
//
// The secret key is a Secret, which never prints.
package s3
