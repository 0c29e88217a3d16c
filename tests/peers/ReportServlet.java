/*
 * An embedded Apache Tomcat 10 with one servlet that reports, as JSON, what the
 * Servlet API saw of each request. The test suite puts it behind the proxy, so
 * the security tests assert on exactly what Jira and Confluence (both Tomcat
 * applications) would see. Started by tests/peers/tomcat.py.
 *
 *   java -cp <tomcat jars>:<dir> ReportServlet PORT [NAME=VALUE ...]
 *
 * PORT 0 picks a free port. Each NAME=VALUE is set on the HTTP connector, like
 * an attribute of <Connector> in server.xml (e.g. relaxedPathChars=[]|).
 * Once started it prints one line "LISTENING <port>" on stdout. With
 * -Dreportservlet.exitWithStdin=true it exits when its stdin reaches end of file,
 * so that it does not outlive the test process that started it.
 *
 * Every request is recorded and answered 200 with its JSON report: an object with
 *   n             request number, from 1 (since start or the last /__reset)
 *   method, uri, query, protocol
 *                 getMethod(), getRequestURI() (raw, not decoded), getQueryString()
 *                 (or null), getProtocol()
 *   headers       [name, value] pairs from getHeaderNames() and getHeaders(name):
 *                 grouped by name in order of first appearance (Tomcat gives the
 *                 names in lower case)
 *   user          getHeader("X-Forwarded-User"): the first such header, or null
 *   users         every X-Forwarded-User value, in order
 *   user_utf8     user's ISO-8859-1 chars re-decoded as UTF-8 (the raw bytes as UTF-8)
 *   user_url      URLDecoder.decode(user, UTF-8), or null if that throws
 *   body_length   bytes read from getInputStream() (after any de-chunking)
 *   remote_port   getRemotePort(): which of the proxy's connections it came on
 *   conn_request  1 for the first request on that TCP connection, 2 for the next...
 *   connection_id Tomcat's id for the TCP connection (ServletConnection)
 * Strings are JSON with every non-ASCII and control char escaped as \\uXXXX.
 *
 * Paths with another answer:
 *   GET  /__reports     a JSON array of all reports so far (not recorded)
 *   POST /__reset       forgets them and restarts the counters (not recorded)
 *   /status/{code}      answers that status (200-599), the report as body
 *                       unless the status has none (204, 304)
 *   /bytes/{n}          n bytes of 'x', with a Content-Length
 *   /chunked/{n}        n bytes of 'x' in several flushes, no Content-Length,
 *                       so Tomcat sends them chunked
 */

import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

import java.io.IOException;
import java.io.InputStream;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.apache.catalina.Context;
import org.apache.catalina.LifecycleState;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;

public final class ReportServlet extends HttpServlet {
    private static final long serialVersionUID = 1L;

    private static final Pattern STATUS = Pattern.compile("/status/([2-5][0-9][0-9])");
    private static final Pattern BYTES = Pattern.compile("/bytes/([0-9]{1,12})");
    private static final Pattern CHUNKED = Pattern.compile("/chunked/([0-9]{1,12})");
    private static final byte[] FILLER = new byte[65536];

    static {
        Arrays.fill(FILLER, (byte) 'x');
    }

    private final transient Object lock = new Object();
    private final transient List<String> reports = new ArrayList<>();
    private final transient Map<String, Integer> perConnection = new HashMap<>();
    private transient long sequence;

    @Override
    protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
        String uri = req.getRequestURI();
        String method = req.getMethod();
        if (uri.equals("/__reports")) {
            if (!method.equals("GET")) {
                resp.sendError(HttpServletResponse.SC_METHOD_NOT_ALLOWED);
                return;
            }
            String all;
            synchronized (lock) {
                all = "[" + String.join(",", reports) + "]";
            }
            sendJson(resp, 200, all);
            return;
        }
        if (uri.equals("/__reset")) {
            if (!method.equals("POST")) {
                resp.sendError(HttpServletResponse.SC_METHOD_NOT_ALLOWED);
                return;
            }
            drain(req.getInputStream());
            synchronized (lock) {
                reports.clear();
                perConnection.clear();
                sequence = 0;
            }
            sendJson(resp, 200, "{}");
            return;
        }

        long bodyLength = drain(req.getInputStream());
        String report = record(req, bodyLength);

        Matcher m = STATUS.matcher(uri);
        if (m.matches()) {
            int status = Integer.parseInt(m.group(1));
            if (status == 204 || status == 304) {
                resp.setStatus(status);
            } else {
                sendJson(resp, status, report);
            }
            return;
        }
        m = BYTES.matcher(uri);
        if (m.matches()) {
            long n = Long.parseLong(m.group(1));
            resp.setStatus(200);
            resp.setContentType("application/octet-stream");
            resp.setContentLengthLong(n);
            write(resp.getOutputStream(), n, FILLER.length, false);
            return;
        }
        m = CHUNKED.matcher(uri);
        if (m.matches()) {
            long n = Long.parseLong(m.group(1));
            resp.setStatus(200);
            resp.setContentType("application/octet-stream");
            // Commit the head now, without a length: Tomcat must chunk the rest.
            resp.flushBuffer();
            long piece = Math.max(1, Math.min(FILLER.length, (n + 3) / 4));
            write(resp.getOutputStream(), n, (int) piece, true);
            return;
        }
        sendJson(resp, 200, report);
    }

    /** Builds the report of one request, numbers it and keeps it. */
    private String record(HttpServletRequest req, long bodyLength) {
        List<String[]> headers = new ArrayList<>();
        for (Enumeration<String> names = req.getHeaderNames(); names.hasMoreElements();) {
            String name = names.nextElement();
            for (Enumeration<String> values = req.getHeaders(name); values.hasMoreElements();) {
                headers.add(new String[] {name, values.nextElement()});
            }
        }
        String user = req.getHeader("X-Forwarded-User");
        List<String> users = Collections.list(req.getHeaders("X-Forwarded-User"));
        String userUtf8 = null;
        String userUrl = null;
        if (user != null) {
            userUtf8 = new String(user.getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
            try {
                userUrl = URLDecoder.decode(user, StandardCharsets.UTF_8);
            } catch (IllegalArgumentException e) {
                userUrl = null;
            }
        }
        // The remote address and port name the TCP connection; Tomcat's connection id
        // is added so that a port the kernel reuses for a later connection starts at 1.
        String connectionId = req.getServletConnection().getConnectionId();
        String connectionKey =
                req.getRemoteAddr() + "|" + req.getRemotePort() + "|" + connectionId;

        synchronized (lock) {
            long n = ++sequence;
            int connRequest = perConnection.merge(connectionKey, 1, Integer::sum);
            StringBuilder j = new StringBuilder(512);
            j.append("{\"n\":").append(n);
            j.append(",\"method\":");
            str(j, req.getMethod());
            j.append(",\"uri\":");
            str(j, req.getRequestURI());
            j.append(",\"query\":");
            str(j, req.getQueryString());
            j.append(",\"protocol\":");
            str(j, req.getProtocol());
            j.append(",\"headers\":[");
            for (int i = 0; i < headers.size(); i++) {
                if (i > 0) {
                    j.append(',');
                }
                j.append('[');
                str(j, headers.get(i)[0]);
                j.append(',');
                str(j, headers.get(i)[1]);
                j.append(']');
            }
            j.append("],\"user\":");
            str(j, user);
            j.append(",\"users\":[");
            for (int i = 0; i < users.size(); i++) {
                if (i > 0) {
                    j.append(',');
                }
                str(j, users.get(i));
            }
            j.append("],\"user_utf8\":");
            str(j, userUtf8);
            j.append(",\"user_url\":");
            str(j, userUrl);
            j.append(",\"body_length\":").append(bodyLength);
            j.append(",\"remote_port\":").append(req.getRemotePort());
            j.append(",\"conn_request\":").append(connRequest);
            j.append(",\"connection_id\":");
            str(j, connectionId);
            j.append('}');
            String report = j.toString();
            reports.add(report);
            return report;
        }
    }

    /**
     * Appends s as a JSON string, or null. Every control character and every
     * char outside ASCII is written as a \\uXXXX escape of its UTF-16 unit, so
     * the output is pure ASCII and json.loads gives back exactly the Java string.
     */
    private static void str(StringBuilder j, String s) {
        if (s == null) {
            j.append("null");
            return;
        }
        j.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                j.append('\\').append(c);
            } else if (c < 0x20 || c >= 0x7f) {
                j.append(String.format("\\u%04x", (int) c));
            } else {
                j.append(c);
            }
        }
        j.append('"');
    }

    private static long drain(InputStream in) throws IOException {
        byte[] buffer = new byte[65536];
        long total = 0;
        for (int r; (r = in.read(buffer)) != -1;) {
            total += r;
        }
        return total;
    }

    private static void write(ServletOutputStream out, long n, int piece, boolean flush)
            throws IOException {
        long left = n;
        while (left > 0) {
            int len = (int) Math.min(left, piece);
            out.write(FILLER, 0, len);
            if (flush) {
                out.flush();
            }
            left -= len;
        }
    }

    private static void sendJson(HttpServletResponse resp, int status, String json)
            throws IOException {
        byte[] body = json.getBytes(StandardCharsets.US_ASCII);
        resp.setStatus(status);
        resp.setContentType("application/json");
        resp.setContentLength(body.length);
        resp.getOutputStream().write(body);
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // Best effort: it is a temporary directory.
        }
    }

    // addServletMappingDecoded(String, String) is deprecated in 10.1 in favour of a
    // form with a JSP flag that Tomcat 11 removes again; the two-argument one is in both.
    @SuppressWarnings("deprecation")
    public static void main(String[] args) throws Exception {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        Path base = Files.createTempDirectory("reportservlet-");
        Tomcat tomcat = new Tomcat();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                tomcat.stop();
                tomcat.destroy();
            } catch (Exception e) {
                // Exiting anyway.
            }
            deleteTree(base);
        }));

        if (Boolean.getBoolean("reportservlet.exitWithStdin")) {
            Thread watch = new Thread(() -> {
                try {
                    while (System.in.read() != -1) {
                        // Nothing is sent; only the end matters.
                    }
                } catch (IOException e) {
                    // Treated as the end.
                }
                System.exit(0);
            }, "stdin-watch");
            watch.setDaemon(true);
            watch.start();
        }

        tomcat.setBaseDir(base.toString());
        tomcat.setPort(port);
        Connector connector = tomcat.getConnector();
        connector.setProperty("address", "127.0.0.1");
        connector.setProperty("maxKeepAliveRequests", "-1");
        for (int i = 1; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0
                    || !connector.setProperty(args[i].substring(0, eq), args[i].substring(eq + 1))) {
                System.err.println("ReportServlet: not a connector property: " + args[i]);
                System.exit(2);
            }
        }

        Context context = tomcat.addContext("", base.toAbsolutePath().toString());
        Tomcat.addServlet(context, "report", new ReportServlet());
        context.addServletMappingDecoded("/*", "report");
        try {
            tomcat.start();
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
        // A context that fails to start may only be logged: do not claim to listen then.
        if (context.getState() != LifecycleState.STARTED
                || connector.getState() != LifecycleState.STARTED) {
            System.err.println("ReportServlet: Tomcat did not start: context "
                    + context.getState() + ", connector " + connector.getState());
            System.exit(1);
        }

        System.out.println("LISTENING " + connector.getLocalPort());
        System.out.flush();
        tomcat.getServer().await();
    }
}
