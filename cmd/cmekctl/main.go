// Command cmekctl manages customer-managed encryption keys for database
// clusters. See pkg/commands.
package main

import (
	"os"

	_ "github.com/cmekctl/cmekctl/internal/hugeheap" // first in the init order: see its doc
	"github.com/cmekctl/cmekctl/internal/startgc"
	"github.com/cmekctl/cmekctl/pkg/commands"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is cmekctl: the collector back on (internal/startgc), then the
// command line. Tests run it as the cmekctl command.
func run(args []string) int {
	startgc.Resume()
	return commands.Main(commands.NewFactory(), args)
}
