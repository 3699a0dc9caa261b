package main

import (
	"os"
	"strconv"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

// fileCmds damage files the way disks and transfers do, for the scripts
// that check what cmekctl says about them:
//
//	cutfile FILE N        drop the last N bytes
//	flipbyte FILE OFFSET  flip the low bit of the byte at OFFSET (negative: from the end)
//	mkfifo PATH           make a named pipe
func fileCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"cutfile": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) != 2 {
				ts.Fatalf("usage: cutfile FILE N")
			}
			b, n := readAndOffset(ts, args[0], args[1])
			ts.Check(os.WriteFile(ts.MkAbs(args[0]), b[:len(b)-int(n)], 0o600))
		},
		"flipbyte": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) != 2 {
				ts.Fatalf("usage: flipbyte FILE OFFSET")
			}
			b, off := readAndOffset(ts, args[0], args[1])
			if off < 0 {
				off += int64(len(b))
			}
			b[off] ^= 1
			ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o600))
		},
		"mkfifo": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) != 1 {
				ts.Fatalf("usage: mkfifo PATH")
			}
			ts.Check(syscall.Mkfifo(ts.MkAbs(args[0]), 0o600))
		},
	}
}

func readAndOffset(ts *testscript.TestScript, file, num string) ([]byte, int64) {
	b, err := os.ReadFile(ts.MkAbs(file))
	ts.Check(err)
	n, err := strconv.ParseInt(num, 10, 64)
	ts.Check(err)
	return b, n
}
