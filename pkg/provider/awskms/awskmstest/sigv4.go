package awskmstest

// The front's check of AWS Signature Version 4 (VerifySignatures).

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// VerifySignatures makes the front check every request's AWS Signature
// Version 4 against the test's credentials (AccessKeyID, SecretKey), as AWS
// does, answering UnrecognizedClientException for another access key and
// InvalidSignatureException for a signature made with another secret.
// local-kms itself checks no signature.
func (s *Server) VerifySignatures(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkSig = on
}

// checkSignature recomputes r's SigV4 signature (AWS's documented
// algorithm: canonical request, string to sign, HMAC-SHA256 signing key)
// with SecretKey and compares it with the one r carries.
func checkSignature(r *http.Request, body []byte) (code, msg string) {
	const bad = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return "IncompleteSignatureException", "malformed Credential"
	}
	if cred[0] != AccessKeyID {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	date, region, service := cred[1], cred[2], cred[3]
	amzDate := r.Header.Get("X-Amz-Date")
	signed := strings.Split(fields["SignedHeaders"], ";")
	var canon strings.Builder
	for _, h := range signed {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			v = strings.Join(r.Header.Values(h), ",")
		}
		canon.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	payload := sha256.Sum256(body)
	creq := strings.Join([]string{r.Method, path, r.URL.RawQuery, canon.String(), fields["SignedHeaders"], hex.EncodeToString(payload[:])}, "\n")
	ch := sha256.Sum256([]byte(creq))
	scope := strings.Join(cred[1:], "/")
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	key := []byte("AWS4" + SecretKey)
	for _, part := range []string{date, region, service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, sts))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "InvalidSignatureException", bad
	}
	return "", ""
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
