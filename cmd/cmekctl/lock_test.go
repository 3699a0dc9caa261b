package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// holdLock is the testscript program holdlock DIR VERB READY.
func holdLock() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: holdlock DIR VERB READY")
		os.Exit(100)
	}
	ctx := keyring.WithLockPolicy(context.Background(), keyring.LockPolicy{Wait: time.Second, Owner: os.Args[2]})
	l, err := keyring.Store{Dir: os.Args[1]}.Lock(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "holdlock:", err)
		os.Exit(3)
	}
	if err := os.WriteFile(os.Args[3], nil, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "holdlock:", err)
		os.Exit(3)
	}
	time.Sleep(time.Minute)
	_ = l.Release()
	os.Exit(0)
}

// waitFile is the testscript program waitfile FILE.
func waitFile() {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(os.Args[1]); err == nil {
			os.Exit(0)
		}
	}
	fmt.Fprintf(os.Stderr, "waitfile: %s did not appear in 20 s\n", os.Args[1])
	os.Exit(1)
}
