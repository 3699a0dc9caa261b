package audit

import (
	"path/filepath"
	"testing"
)

// BenchmarkAppend: one entry appended (fsynced), with the hash chain only
// (the baseline) and with the forward-secure MAC chain (one more
// HMAC-SHA256 pair and the key file's overwrite and fsync).
func BenchmarkAppend(b *testing.B) {
	for _, mac := range []bool{false, true} {
		name := "hash-chain"
		if mac {
			name = "mac-chain"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			l, err := Open(filepath.Join(dir, "audit.log"), nil)
			if err != nil {
				b.Fatal(err)
			}
			if mac {
				if _, err := l.Init(filepath.Join(dir, "auditor.key"), false); err != nil {
					b.Fatal(err)
				}
			}
			e := Entry{Verb: "unlock", Op: "unwrap", Cluster: "c1", Region: "r1", Node: "n1", CMEKURI: "file-kms:///k", Result: "ok"}
			b.ResetTimer()
			for b.Loop() {
				if err := l.Append(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
