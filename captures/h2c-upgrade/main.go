// Command h2c-upgrade-server serves HTTP/1.1 and h2c on one address, accepting the
// `Upgrade: h2c` of RFC 7540 §3.2 (golang.org/x/net/http2/h2c), for captures/record.sh.
// Each response names the stream's path, so a capture shows which request it answers.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: h2c-upgrade-server ADDR")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s over %s\n", r.Method, r.URL.Path, r.Proto)
	})
	srv := &http.Server{Addr: os.Args[1], Handler: h2c.NewHandler(h, &http2.Server{})}
	log.Fatal(srv.ListenAndServe())
}
