import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.graphdb.ExecutionPlanDescription;
import org.neo4j.graphdb.Result;
import org.neo4j.graphdb.Transaction;
import org.neo4j.harness.Neo4jBuilder;
import org.neo4j.harness.Neo4jBuilders;
import org.neo4j.procedure.Context;
import org.neo4j.procedure.Description;
import org.neo4j.procedure.Mode;
import org.neo4j.procedure.Name;
import org.neo4j.procedure.Procedure;

/**
 * Runs a throwaway Neo4j Community server for lwcache's tests (driven by xtask/src/neo4j.rs).
 *
 * <p>Why this exists: the tests need a real Neo4j speaking Bolt, but the machines they run on
 * reach Maven Central and nothing else, so neither the Neo4j tarball nor a container image can
 * be downloaded. The test harness artifact on Maven Central contains the whole database, so a
 * few lines of Java turn it into a server process.
 *
 * <p>Usage: {@code Launcher --port N --data-dir DIR [--password PW] [--page-cache-bytes B]}
 *
 * <ul>
 *   <li>{@code --port}: Bolt port on 127.0.0.1; 0 lets the OS pick a free one (race free).
 *   <li>{@code --data-dir}: an existing directory. The harness creates a randomly named folder
 *       in it holding the database and Neo4j's logs ({@code neo4j.log}, {@code logs/debug.log});
 *       a clean shutdown deletes that folder.
 *   <li>{@code --password}: enables authentication and sets the password of the {@code neo4j}
 *       user. Without it, authentication is disabled.
 *   <li>{@code --page-cache-bytes}: the page cache size; the harness's default (8 MiB) when
 *       absent. Benchmarks give it room for the whole store.
 * </ul>
 *
 * <p>Protocol with the parent process: stdout carries exactly one line, {@code NEO4J_READY
 * bolt://127.0.0.1:PORT}, once Bolt accepts connections. Diagnostics go to stderr. The server
 * then runs until stdin reaches EOF (the parent exited or closed the pipe) or SIGTERM/SIGINT
 * arrives, shuts the database down cleanly and exits 0.
 *
 * <p>The server also has one test-only procedure, {@code lwcache.test.profile(query, params)},
 * which runs a query under PROFILE and returns its plan, one row per operator: Bolt drivers
 * such as neo4rs do not expose plans, and the tests must show which indexes a query uses. Exit codes: 0 clean shutdown, 1 startup
 * failure, 2 bad arguments, 3 the requested port is already in use (the parent may retry).
 */
public final class Launcher {
    private static final int EXIT_STARTUP_FAILED = 1;
    private static final int EXIT_USAGE = 2;
    private static final int EXIT_PORT_IN_USE = 3;

    private static final String HOST = "127.0.0.1";

    private Launcher() {}

    public static void main(String[] args) {
        // The ready line is the only thing the parent parses on stdout, so keep the real stdout
        // for it and send anything else that writes to System.out (Neo4j, libraries) to stderr.
        PrintStream protocolOut = System.out;
        System.setOut(System.err);

        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("neo4j-launcher: " + e.getMessage());
            System.err.println("usage: Launcher --port N --data-dir DIR [--password PW]");
            System.exit(EXIT_USAGE);
            return;
        }

        // Register the stop triggers before starting, so a parent that gives up during the slow
        // startup still gets the server shut down (the main thread checks the latch afterwards).
        CountDownLatch stop = new CountDownLatch(1);
        watchStdin(stop);
        trapSignal("TERM", stop);
        trapSignal("INT", stop);

        Server server = new Server();
        // Last resort for other ways the JVM can be asked to exit (SIGHUP, System.exit elsewhere).
        Runtime.getRuntime().addShutdownHook(new Thread(server::close, "neo4j-launcher-shutdown"));

        int port;
        try {
            port = server.start(options);
        } catch (RuntimeException e) {
            server.close();
            if (isBindFailure(e)) {
                System.err.println("NEO4J_PORT_IN_USE " + HOST + ":" + options.port);
                e.printStackTrace();
                System.exit(EXIT_PORT_IN_USE);
            }
            System.err.println("neo4j-launcher: Neo4j failed to start");
            e.printStackTrace();
            System.exit(EXIT_STARTUP_FAILED);
            return;
        }

        if (stop.getCount() == 0) {
            // Asked to stop while starting: do not announce a server that is going away.
            server.close();
            System.exit(0);
        }
        protocolOut.println("NEO4J_READY bolt://" + HOST + ":" + port);
        protocolOut.flush();

        awaitUninterruptibly(stop);
        server.close();
        System.exit(0);
    }

    /** Owns the embedded database; {@link #close} is idempotent and callable from any thread. */
    private static final class Server {
        private Neo4j neo4j;
        private boolean closed;

        synchronized int start(Options options) {
            if (closed) {
                throw new IllegalStateException("stopped before startup finished");
            }
            boolean auth = options.password != null;
            Neo4jBuilder builder = Neo4jBuilders.newInProcessBuilder(options.dataDir)
                    // HTTP is not needed; Bolt is the only thing the tests talk to.
                    .withDisabledServer()
                    .withConfig(BoltConnector.enabled, true)
                    .withConfig(BoltConnector.listen_address, new SocketAddress(HOST, options.port))
                    // Loopback only, so TLS would only cost certificate generation and setup time.
                    .withConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                    .withConfig(GraphDatabaseSettings.auth_enabled, auth)
                    // Tests may use short passwords; Neo4j's default minimum is 8 characters.
                    .withConfig(GraphDatabaseSettings.auth_minimum_password_length, 1)
                    // Transaction logs are preallocated (up to 256 MiB per database) by default;
                    // throwaway databases, often several at once, should not pay that disk cost.
                    .withConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                    .withConfig(GraphDatabaseSettings.logical_log_rotation_threshold, 16L * 1024 * 1024)
                    // No usage reports: the machines have no route to Neo4j's servers anyway.
                    .withConfig(GraphDatabaseSettings.udc_enabled, false)
                    // Shutdown speed matters more than grace for a throwaway server: Netty would
                    // otherwise wait a 5 s quiet period, and open transactions up to 10 s.
                    .withConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                    .withConfig(GraphDatabaseSettings.shutdown_transaction_end_timeout, Duration.ofSeconds(2))
                    .withProcedure(Plans.class);
            if (options.pageCacheBytes > 0) {
                builder = builder.withConfig(GraphDatabaseSettings.pagecache_memory, options.pageCacheBytes);
            }
            neo4j = builder.build();

            if (auth) {
                // The built-in `neo4j` user starts with password "neo4j" and must change it on
                // first login. Embedded transactions bypass authentication, so set the requested
                // password directly in the system database and drop the change requirement.
                neo4j.databaseManagementService()
                        .database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME)
                        .executeTransactionally(
                                "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                                Map.of("password", options.password));
            }

            int port = neo4j.boltURI().getPort();
            // build() returns once the Bolt connector is bound; connecting once proves that the
            // port is really accepting before the parent is told so.
            try (Socket probe = new Socket()) {
                probe.connect(new InetSocketAddress(HOST, port), (int) Duration.ofSeconds(10).toMillis());
            } catch (IOException e) {
                throw new IllegalStateException("Bolt port " + port + " does not accept connections", e);
            }
            return port;
        }

        synchronized void close() {
            if (closed) {
                return;
            }
            closed = true;
            if (neo4j != null) {
                // Shuts all databases down (checkpoint, close stores) and deletes the harness's
                // own randomly named folder below the data dir.
                neo4j.close();
                neo4j = null;
            }
        }
    }

    /** Command-line options; see the class comment. */
    private static final class Options {
        int port = -1;
        Path dataDir;
        String password;
        long pageCacheBytes;

        static Options parse(String[] args) {
            Options options = new Options();
            for (int i = 0; i < args.length; i++) {
                String flag = args[i];
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("missing value for " + flag);
                }
                String value = args[++i];
                switch (flag) {
                    case "--port" -> options.port = parsePort(value);
                    case "--data-dir" -> options.dataDir = Path.of(value).toAbsolutePath();
                    case "--password" -> options.password = value;
                    case "--page-cache-bytes" -> options.pageCacheBytes = parseBytes(value);
                    default -> throw new IllegalArgumentException("unknown argument " + flag);
                }
            }
            if (options.port < 0) {
                throw new IllegalArgumentException("--port is required");
            }
            if (options.dataDir == null || !Files.isDirectory(options.dataDir)) {
                throw new IllegalArgumentException("--data-dir must name an existing directory");
            }
            if (options.password != null && options.password.isEmpty()) {
                throw new IllegalArgumentException("--password must not be empty");
            }
            return options;
        }

        private static long parseBytes(String value) {
            try {
                long bytes = Long.parseLong(value);
                if (bytes > 0) {
                    return bytes;
                }
            } catch (NumberFormatException e) {
                // Reported below.
            }
            throw new IllegalArgumentException("--page-cache-bytes must be a positive number, got " + value);
        }

        private static int parsePort(String value) {
            try {
                int port = Integer.parseInt(value);
                if (port >= 0 && port <= 65535) {
                    return port;
                }
            } catch (NumberFormatException e) {
                // Reported below.
            }
            throw new IllegalArgumentException("--port must be 0..65535, got " + value);
        }
    }

    /** EOF on stdin means the parent is gone or wants us to stop; either way, shut down. */
    private static void watchStdin(CountDownLatch stop) {
        Thread reader = new Thread(
                () -> {
                    byte[] buffer = new byte[256];
                    try (InputStream in = System.in) {
                        while (in.read(buffer) != -1) {
                            // Input is ignored; only EOF matters.
                        }
                    } catch (IOException e) {
                        // A broken pipe also means the parent is gone.
                    }
                    stop.countDown();
                },
                "neo4j-launcher-stdin");
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * Turns a signal into an orderly stop. Without this the JVM would run shutdown hooks and exit
     * with 128+signal; handling it lets the main thread shut Neo4j down and exit 0 like on EOF.
     */
    private static void trapSignal(String name, CountDownLatch stop) {
        try {
            sun.misc.Signal.handle(new sun.misc.Signal(name), signal -> stop.countDown());
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            // Signal not available here: the shutdown hook still closes the database.
        }
    }

    private static void awaitUninterruptibly(CountDownLatch latch) {
        while (true) {
            try {
                latch.await();
                return;
            } catch (InterruptedException e) {
                // Only a stop request ends the wait.
            }
        }
    }

    private static boolean isBindFailure(Throwable error) {
        for (Throwable t = error; t != null; t = t.getCause()) {
            if (t instanceof BindException || t.getClass().getSimpleName().equals("PortBindException")) {
                return true;
            }
        }
        return false;
    }

    /** The test-only procedure that returns a query's profiled plan (see the class comment). */
    public static final class Plans {
        @Context
        public Transaction tx;

        /** One operator of a plan. */
        public static final class Operator {
            public String operator;
            public String details;
            public long depth;
            public long rows;
            public long dbHits;
        }

        @Procedure(name = "lwcache.test.profile", mode = Mode.READ)
        @Description("Runs a read query under PROFILE and returns its plan, one row per operator.")
        public Stream<Operator> profile(
                @Name("query") String query, @Name("params") Map<String, Object> params) {
            try (Result result = tx.execute("PROFILE " + query, params)) {
                result.accept(row -> true);
                List<Operator> operators = new ArrayList<>();
                flatten(result.getExecutionPlanDescription(), 0, operators);
                return operators.stream();
            }
        }

        private static void flatten(ExecutionPlanDescription plan, long depth, List<Operator> out) {
            Operator op = new Operator();
            op.operator = plan.getName();
            Object details = plan.getArguments().get("Details");
            op.details = details == null ? "" : details.toString();
            op.depth = depth;
            if (plan.hasProfilerStatistics()) {
                op.rows = plan.getProfilerStatistics().getRows();
                op.dbHits = plan.getProfilerStatistics().getDbHits();
            }
            out.add(op);
            for (ExecutionPlanDescription child : plan.getChildren()) {
                flatten(child, depth + 1, out);
            }
        }
    }
}
