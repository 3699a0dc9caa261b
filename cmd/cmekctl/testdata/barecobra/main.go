// Command barecobra is the start-up baseline of startup_bench_test.go: a
// cobra root with one "version" verb and nothing else imported.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "barecobra", SilenceUsage: true}
	root.AddCommand(&cobra.Command{Use: "version", RunE: func(*cobra.Command, []string) error {
		fmt.Println("barecobra devel")
		return nil
	}})
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
