package main

// BUG: a process that holds a plaintext backup key does not disable core
// dumps.
//
// Where: pkg/keyring/backupkeys.go, UnwrapBackupKey and CreateBackupKey,
// return a plaintext backup key without calling disableCoreDumps
// (pkg/keyring/coredump_linux.go); only UnwrapBundle (pkg/keyring/group.go)
// calls it. So `cmekctl backup decrypt`, `backup encrypt`, `backup-keys
// create|verify` (pkg/commands/backup.go), which unwrap or create backup
// keys and never a store-key bundle, run with the core-file limit and
// dumpability they inherited: a crash or a same-user ptrace/core request
// while they stream can write the backup key to disk.
//
// Input: `cmekctl backup decrypt --keyring N1` reading a full backup on
// stdin, observed after the header (the key is unwrapped) while it waits
// for the rest. Expected: /proc/PID/limits shows "Max core file size 0 0",
// as it does for `cmekctl data decrypt` (TestCoreDumpsOffWhileDecrypting).
// Actual: the inherited limit stays (here "0 unlimited").
//
// To see it fail, rename this file to _test.go and run it alone (an
// in-process unwrap by an earlier test lowers this process's hard limit,
// which children inherit):
//
//	go test -count=1 -run TestCoreDumpsOffWhileDecryptingBackup -v ./cmd/cmekctl
//
// A fix: call disableCoreDumps() at the top of UnwrapBackupKey and
// CreateBackupKey, as UnwrapBundle does.

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestCoreDumpsOffWhileDecryptingBackup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	w := newKillWorld(t)
	plain := make([]byte, 4<<20)
	_, _ = rand.Read(plain)
	in := filepath.Join(w.tmp, "dump.sql")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(w.tmp, "full.cmek")
	cliOK(t, w.tmp, "backup", "encrypt", "--keyring", w.dirs[0], in, full)
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	if !coreLimitZeroMidStream(t, w.tmp, data, "backup", "decrypt", "--keyring", w.dirs[0]) {
		t.Errorf("cmekctl backup decrypt held the backup key with core dumps allowed (RLIMIT_CORE not 0 in /proc/PID/limits)")
	}
}
