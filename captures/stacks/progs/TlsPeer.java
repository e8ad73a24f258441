// TlsPeer: a tiny Java JSSE (SSLSocket) client or server for captures/record-stacks.sh. JSSE
// writes no key log, so the key log comes from the other peer (OpenSSL). It exists only to put
// JSSE's TLS 1.3 handshake on the wire; it is not part of meshsniff.
//
//   java TlsPeer server PORT KEYSTORE.p12 PASS     requires a client certificate; one connection
//   java TlsPeer client HOST PORT [KEYSTORE.p12 PASS]
//   java TlsPeer sslv2hello HOST PORT     a TLS 1.2 handshake begun with an SSLv2-format
//                                          ClientHello (JSSE's "SSLv2Hello" pseudo-protocol)
import javax.net.ssl.*;
import java.io.*;
import java.security.KeyStore;
import java.security.cert.X509Certificate;

public class TlsPeer {
    static KeyManager[] keys(String path, String pass) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(path)) { ks.load(in, pass.toCharArray()); }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("SunX509");
        kmf.init(ks, pass.toCharArray());
        return kmf.getKeyManagers();
    }

    // The test PKI is thrown away after recording; what is measured is the wire, not trust.
    static TrustManager[] trustAll() {
        return new TrustManager[] { new X509TrustManager() {
            public void checkClientTrusted(X509Certificate[] c, String a) {}
            public void checkServerTrusted(X509Certificate[] c, String a) {}
            public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
        } };
    }

    public static void main(String[] a) throws Exception {
        SSLContext ctx = SSLContext.getInstance("TLSv1.3");
        if (a[0].equals("server")) {
            ctx.init(keys(a[2], a[3]), trustAll(), null);
            SSLServerSocket ss = (SSLServerSocket) ctx.getServerSocketFactory()
                .createServerSocket(Integer.parseInt(a[1]));
            ss.setNeedClientAuth(true);
            ss.setEnabledProtocols(new String[] { "TLSv1.3" });
            try (SSLSocket s = (SSLSocket) ss.accept()) {
                s.setSoTimeout(5000);
                byte[] buf = new byte[4096];
                int n = s.getInputStream().read(buf);
                s.getOutputStream().write(("HTTP/1.0 200 OK\r\n\r\nhello " + n + "\n").getBytes());
                s.getOutputStream().flush();
            } catch (IOException e) {
                System.err.println("TlsPeer server: " + e);
            }
        } else if (a[0].equals("sslv2hello")) {
            SSLContext c12 = SSLContext.getInstance("TLSv1.2");
            c12.init(null, trustAll(), null);
            try (SSLSocket s = (SSLSocket) c12.getSocketFactory()
                    .createSocket(a[1], Integer.parseInt(a[2]))) {
                s.setSoTimeout(5000);
                s.setEnabledProtocols(new String[] { "SSLv2Hello", "TLSv1.2" });
                s.startHandshake();
                s.getOutputStream().write("GET / HTTP/1.0\r\n\r\n".getBytes());
                s.getOutputStream().flush();
                System.out.println(s.getSession().getProtocol() + " read "
                    + s.getInputStream().read(new byte[4096]));
            } catch (IOException e) {
                System.err.println("TlsPeer sslv2hello: " + e);
            }
        } else {
            ctx.init(a.length >= 5 ? keys(a[3], a[4]) : null, trustAll(), null);
            try (SSLSocket s = (SSLSocket) ctx.getSocketFactory()
                    .createSocket(a[1], Integer.parseInt(a[2]))) {
                s.setSoTimeout(5000);
                s.setEnabledProtocols(new String[] { "TLSv1.3" });
                s.startHandshake();
                s.getOutputStream().write("GET / HTTP/1.0\r\n\r\n".getBytes());
                s.getOutputStream().flush();
                System.out.println("read " + s.getInputStream().read(new byte[4096]));
            } catch (IOException e) {
                System.err.println("TlsPeer client: " + e);
            }
        }
    }
}
