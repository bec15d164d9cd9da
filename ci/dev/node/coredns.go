// CoreDNS with only the plugins the real node's cluster DNS uses (ci/dev/node.sh): the full plugin set pulls in
// every cloud SDK and triples the build. Built by ci/dev/provision-k8s.sh in a throw-away module.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order CoreDNS runs them in: upstream's plugin.cfg order, restricted to the plugins above.
var directives = []string{"bind", "ready", "health", "errors", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
