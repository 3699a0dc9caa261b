// Command cmekctl manages customer-managed encryption keys for database
// clusters. See pkg/commands.
package main

import (
	"os"

	"github.com/cmekctl/cmekctl/pkg/commands"
)

func main() {
	os.Exit(commands.Main(commands.NewFactory(), os.Args[1:]))
}
