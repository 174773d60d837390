// Command websrv stands in for nginx and httpd in the offline test images.
// critest only needs a process that answers HTTP on a port, writes a pid file,
// prints a known start-up line and shows a recognisable command line; a real
// web server would have to come from a registry we cannot reach.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
)

func main() {
	port := flag.Int("port", 80, "TCP port to serve on")
	pidfile := flag.String("pidfile", "", "write the PID here")
	line := flag.String("log", "", "print this line on stdout and stderr at start-up")
	flag.String("title", "", "ignored; it only has to appear in /proc/PID/cmdline")
	flag.Parse()

	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "websrv: pid file %s: %v\n", *pidfile, err)
		}
	}
	if *line != "" {
		fmt.Println(*line)
		fmt.Fprintln(os.Stderr, *line)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "<html><body><h1>Welcome to nginx!</h1><p>It works!</p></body></html>")
	})
	if err := http.ListenAndServe(":"+strconv.Itoa(*port), nil); err != nil {
		fmt.Fprintf(os.Stderr, "websrv: port %d: %v\n", *port, err)
		os.Exit(1)
	}
}
