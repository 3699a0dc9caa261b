package commands

import (
	"fmt"
	"path/filepath"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// The report of a verb that streams data (backup and data encrypt|decrypt).
// The data and the report never share a stream: with -o json (or yaml) the
// report goes to stdout when OUT is a file, and to stderr when the data goes
// to stdout (OUT "" or "-"); in table mode backup encrypt and decrypt say on
// stderr which backup and key they used (docs/json.md).

// streamBytes are the bytes a stream read and wrote.
type streamBytes struct{ In, Out int64 }

// streamReport is what every streaming verb reports.
type streamReport struct {
	// Input and Output are absolute paths, or "-" for stdin and stdout.
	Input  string `json:"input"`
	Output string `json:"output"`
	// BytesIn and BytesOut are the bytes read and written (plaintext and
	// ciphertext, in the verb's direction); Chunks the stream's chunks.
	BytesIn  int64    `json:"bytes_in"`
	BytesOut int64    `json:"bytes_out"`
	Chunks   int64    `json:"chunks"`
	KMSCalls KMSCalls `json:"kms_calls"`
}

func newStreamReport(in, out string, n streamBytes, plaintext int64, calls KMSCalls) streamReport {
	return streamReport{Input: streamPath(in), Output: streamPath(out), BytesIn: n.In, BytesOut: n.Out,
		Chunks: chunkCount(plaintext), KMSCalls: calls}
}

// chunkCount is the chunks of a stream of n plaintext bytes: full chunks,
// and a final one of 1 to C bytes (an empty stream has one empty chunk).
func chunkCount(n int64) int64 {
	return max(1, (n+stream.DefaultChunkSize-1)/stream.DefaultChunkSize)
}

// streamPath is an input or output path as reports give it: absolute, or
// "-" for a standard stream.
func streamPath(p string) string {
	if p == "" || p == "-" {
		return "-"
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// backupReport is backup encrypt's and backup decrypt's report.
type backupReport struct {
	ClusterID string `json:"cluster_id"`
	BackupID  string `json:"backup_id"`
	// Kind is "full" or "incremental"; Parent the full backup's ID.
	Kind        string `json:"kind"`
	Parent      string `json:"parent,omitempty"`
	BackupKeyID string `json:"backup_key_id"`
	// NewBackupKey: encrypt made the backup key for this backup (a full
	// backup); false when it reused its full backup's (an incremental) or
	// used one backup-keys create made (--backup-key).
	NewBackupKey bool `json:"new_backup_key"`
	// Region is the region whose CMEK key unwrapped the backup key (decrypt).
	Region string `json:"region,omitempty"`
	streamReport
}

// dataReport is data encrypt's and data decrypt's report.
type dataReport struct {
	ClusterID string `json:"cluster_id"`
	Region    string `json:"region"`
	Node      string `json:"node"`
	// Keyring is the node's keyring directory, absolute.
	Keyring string `json:"keyring"`
	// DataKeyID is the data key that sealed the data.
	DataKeyID string `json:"data_key_id"`
	streamReport
}

// printStreamReport writes a streaming verb's report where it cannot mix
// with the data: stdout when OUT is a file, stderr when the data went to
// stdout. In table mode it writes line (if any) to stderr.
func printStreamReport(f *Factory, p printer, out string, rep any, line string) error {
	if !p.structured() {
		if line != "" {
			fmt.Fprintln(f.IO.ErrOut, line)
		}
		return nil
	}
	if out == "" || out == "-" {
		p = p.to(f.IO.ErrOut)
	}
	return p.print(rep)
}

// backupLine is backup encrypt's and decrypt's one line in table mode.
func backupLine(verb string, r backupReport) string {
	key := "backup key " + keyring.Short(r.BackupKeyID)
	switch {
	case r.Region != "":
		key += " (unwrapped with region " + r.Region + "'s CMEK key)"
	case r.NewBackupKey:
		key = "new " + key
	case r.Parent == "":
		key += " (made by backup-keys create)"
	default:
		key += " of full backup " + keyring.Short(r.Parent)
	}
	return fmt.Sprintf("%s %s backup %s with %s: %d bytes in, %d bytes out, %d chunks",
		verb, r.Kind, r.BackupID, key, r.BytesIn, r.BytesOut, r.Chunks)
}
