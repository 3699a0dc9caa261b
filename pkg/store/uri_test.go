package store

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	good := []struct {
		uri    string
		scheme string
		bucket string
		prefix string
		hosts  int
		dir    string
	}{
		{"s3://kr/prod/keys?AUTH=implicit&AWS_REGION=us-east-1", "s3", "kr", "prod/keys", 0, ""},
		{"s3://kr?AWS_REGION=eu-west-1&AWS_ENDPOINT=http://127.0.0.1:9000&ASSUME_ROLE=arn:aws:iam::000000000000:role/r", "s3", "kr", "", 0, ""},
		{"s3://kr/p?AWS_ENDPOINT=https://minio.example.internal", "s3", "kr", "p", 0, ""},
		{"gs://kr/prod?AUTH=implicit", "gs", "kr", "prod", 0, ""},
		{"etcd://127.0.0.1:2379,localhost:22379/cmekctl", "etcd", "", "cmekctl", 2, ""},
		{"etcd://etcd.internal:2379/c?CA_CERT=/etc/ca.pem&CLIENT_CERT=/etc/c.pem&CLIENT_KEY=/etc/c.key", "etcd", "", "c", 1, ""},
		{"file:///var/lib/cmekctl/store", "file", "", "", 0, "/var/lib/cmekctl/store"},
		{"/var/lib/cmekctl/my store", "file", "", "", 0, "/var/lib/cmekctl/my store"},
	}
	for _, c := range good {
		l, err := ParseURI(c.uri)
		if err != nil {
			t.Errorf("%s: %v", c.uri, err)
			continue
		}
		if l.Scheme != c.scheme || l.Bucket != c.bucket || l.Prefix != c.prefix || len(l.Hosts) != c.hosts || l.Dir != c.dir {
			t.Errorf("%s: parsed %+v", c.uri, l)
		}
	}
	bad := []struct{ uri, says string }{
		{"", "empty"},
		{"relative/dir", "scheme"},
		{"ftp://x/y", "scheme"},
		{"s3://kr/p?AWS_REGION=x&REGION=y", "unknown parameter REGION"},
		{"s3://kr/p?AUTH=specified", "only AUTH=implicit"},
		{"s3://kr/p?AWS_SECRET_ACCESS_KEY=hunter2", "secret"},
		{"s3://user:pw@kr/p", "credentials"},
		{"s3:///p", "needs a bucket"},
		{"s3://kr/p?AWS_ENDPOINT=http://s3.example.com", "plaintext"},
		{"s3://kr/p?AWS_REGION=a&AWS_REGION=b", "given 2 times"},
		{"gs://kr/p?CREDENTIALS=e30=", "secret"},
		{"gs://kr/p?AUTH=implicit&PROJECT=x", "unknown parameter"},
		{"etcd:///p", "HOST:PORT"},
		{"etcd://host/p", "HOST:PORT"},
		{"etcd://etcd.example.com:2379/p", "plaintext outside loopback"},
		{"etcd://127.0.0.1:2379/p?CLIENT_CERT=/c.pem", "go together"},
		{"etcd://127.0.0.1:2379/p?TLS=maybe", "TLS=maybe"},
		{"etcd://127.0.0.1:2379/p?PASSWORD=x", "secret"},
		{"file://host/dir", "local"},
		{"s3://kr/../x", "prefix"},
	}
	for _, c := range bad {
		_, err := ParseURI(c.uri)
		if !errors.Is(err, ErrURI) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: %v, want ErrURI saying %q", c.uri, err, c.says)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), ":pw@")) {
			t.Errorf("%q: the error repeats a secret: %v", c.uri, err)
		}
	}
}

func TestDecodeRefusesForeignObjects(t *testing.T) {
	for _, raw := range []string{"", "{}", "cmekctl-store-doc/1 rev 0\n", "cmekctl-store-doc/1 rev x\n", "cmekctl-store-doc/1 rev 3"} {
		if _, _, err := decode([]byte(raw)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode(%q): %v, want ErrCorrupt", raw, err)
		}
	}
	rev, body, err := decode(encode(7, []byte("a\nb")))
	if err != nil || rev != 7 || string(body) != "a\nb" {
		t.Fatalf("round trip: %d %q %v", rev, body, err)
	}
}
