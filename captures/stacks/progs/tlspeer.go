// tlspeer: a tiny Go crypto/tls client or server for captures/record-stacks.sh. It writes an
// NSS key log (tls.Config.KeyLogWriter) so the capture can be decrypted, and exists only to put
// Go's TLS 1.3 handshake on the wire; it is not part of meshsniff.
//
//	tlspeer server ADDR CERT KEY CA KEYLOG        requires a client certificate; N connections
//	tlspeer client ADDR SNI CA KEYLOG N [CERT KEY] N connections, sharing a session cache
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlspeer:", err)
		os.Exit(1)
	}
}

func pool(ca string) *x509.CertPool {
	pem, err := os.ReadFile(ca)
	must(err)
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

func keylog(path string) io.Writer {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(err)
	return f
}

func main() {
	a := os.Args[1:]
	switch a[0] {
	case "server":
		cert, err := tls.LoadX509KeyPair(a[2], a[3])
		must(err)
		cfg := &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool(a[4]),
			MinVersion:   tls.VersionTLS13,
			KeyLogWriter: keylog(a[5]),
		}
		ln, err := tls.Listen("tcp", a[1], cfg)
		must(err)
		for {
			c, err := ln.Accept()
			must(err)
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				if n, err := c.Read(buf); err == nil {
					c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nhello " + strconv.Itoa(n) + "\n"))
				}
			}(c)
		}
	case "client":
		n, err := strconv.Atoi(a[5])
		must(err)
		cfg := &tls.Config{
			ServerName:         a[2],
			RootCAs:            pool(a[3]),
			MinVersion:         tls.VersionTLS13,
			KeyLogWriter:       keylog(a[4]),
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
		}
		if len(a) >= 8 {
			cert, err := tls.LoadX509KeyPair(a[6], a[7])
			must(err)
			cfg.Certificates = []tls.Certificate{cert}
		}
		for i := 0; i < n; i++ {
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", a[1], cfg)
			if err != nil {
				fmt.Fprintln(os.Stderr, "tlspeer: handshake:", err)
				continue
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			b, _ := io.ReadAll(c)
			fmt.Printf("resumed=%v %q\n", c.ConnectionState().DidResume, b)
			c.Close()
			time.Sleep(200 * time.Millisecond)
		}
	}
}
