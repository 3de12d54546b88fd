// dbsandbox conformance: pgjdbc (Debian's libpostgresql-jdbc-java) through the proxy.
// Run under `dbsandbox run`, which exports DBSANDBOX_HOST and DBSANDBOX_PORT; each check uses
// its own sandbox key (the database name: "java_" + the check's number) and resets it in-band
// (SELECT dbsandbox_reset()) before it runs. Single-file program (java Conformance.java), no
// test framework: it prints "ok"/"not ok" per check and exits 1 if any failed.
//
// pgjdbc protocol notes (what the proxy sees): every statement goes over the extended protocol;
// from the fifth execution of a PreparedStatement on (prepareThreshold) it is a named server
// statement "S_n", the same names on every connection; with autocommit off and a fetch size, a
// query is a named portal "C_n" read with Execute(fetchSize) + Sync, the portal kept across
// Syncs until the transaction ends; executeBatch pipelines many Bind/Execute before one Sync.

import java.io.ByteArrayInputStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;

import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;
import org.postgresql.largeobject.LargeObject;
import org.postgresql.largeobject.LargeObjectManager;

public class Conformance {
    interface Check { void run(Sandbox sb) throws Exception; }

    /** One check's sandbox key and its connections. */
    static final class Sandbox {
        final String key;
        final List<Connection> open = new ArrayList<>();
        Sandbox(String key) { this.key = key; }
        String url() {
            return "jdbc:postgresql://" + System.getenv("DBSANDBOX_HOST") + ":" + System.getenv("DBSANDBOX_PORT")
                + "/" + key + "?user=dbsandbox&connectTimeout=10&socketTimeout=60";
        }
        Connection connect() throws SQLException { return connect(new Properties()); }
        Connection connect(Properties extra) throws SQLException {
            Connection c = DriverManager.getConnection(url(), extra);
            open.add(c);
            return c;
        }
        void closeAll() {
            for (Connection c : open) { try { c.close(); } catch (SQLException ignored) { } }
            open.clear();
        }
    }

    static void check(boolean ok, String what) { if (!ok) throw new AssertionError(what); }
    static <T> void same(T expected, T actual, String what) {
        if (!Objects.equals(expected, actual)) throw new AssertionError(what + ": expected " + expected + ", got " + actual);
    }
    static String sqlstate(ThrowingRunnable r) throws Exception {
        try { r.run(); } catch (SQLException e) { return e.getSQLState(); }
        throw new AssertionError("no error where one was expected");
    }
    interface ThrowingRunnable { void run() throws Exception; }

    static List<String> names(Connection c) throws SQLException {
        List<String> out = new ArrayList<>();
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select name from items order by id")) {
            while (rs.next()) out.add(rs.getString(1));
        }
        return out;
    }
    static long scalar(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) { rs.next(); return rs.getLong(1); }
    }
    static void exec(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) { s.execute(sql); }
    }
    static void insert(Connection c, String name) throws SQLException {
        try (PreparedStatement p = c.prepareStatement("insert into items(name) values (?)")) { p.setString(1, name); p.executeUpdate(); }
    }

    static final Map<String, Check> CHECKS = new LinkedHashMap<>();
    static {
        CHECKS.put("j01_commit_then_reset_leaves_nothing", sb -> {
            Connection c = sb.connect();
            insert(c, "autocommitted");
            c.setAutoCommit(false);
            insert(c, "committed");
            c.commit();
            same(List.of("autocommitted", "committed"), names(sb.connect()), "rows after the commits");
            c.setAutoCommit(true);
            exec(c, "select dbsandbox_reset()");
            same(0L, scalar(c, "select count(*) from items"), "rows after the reset");
        });
        CHECKS.put("j02_rollback_undoes_commit_keeps", sb -> {
            Connection c = sb.connect();
            c.setAutoCommit(false);
            insert(c, "rolled back");
            c.rollback();
            insert(c, "kept");
            c.commit();
            same(List.of("kept"), names(sb.connect()), "rows");
        });
        CHECKS.put("j03_savepoint_after_a_unique_violation", sb -> {
            Connection c = sb.connect();
            c.setAutoCommit(false);
            insert(c, "a");
            Savepoint sp = c.setSavepoint();
            same("23505", sqlstate(() -> insert(c, "a")), "duplicate");
            same("25P02", sqlstate(() -> insert(c, "b")), "aborted transaction");
            c.rollback(sp);
            insert(c, "b");
            c.commit();
            same(List.of("a", "b"), names(c), "rows");
        });
        CHECKS.put("j04_server_prepared_statements_on_two_connections", sb -> {
            Connection one = sb.connect(), two = sb.connect();
            try (PreparedStatement p1 = one.prepareStatement("select ?::int + 1");
                 PreparedStatement p2 = two.prepareStatement("select ?::int * 10")) {
                for (int i = 1; i <= 8; i++) {
                    p1.setInt(1, i); p2.setInt(1, i);
                    try (ResultSet a = p1.executeQuery(); ResultSet b = p2.executeQuery()) {
                        a.next(); b.next();
                        same(i + 1, a.getInt(1), "one's statement, run " + i);
                        same(i * 10, b.getInt(1), "two's statement, run " + i);
                    }
                }
            }
        });
        CHECKS.put("j05_fetch_size_reads_a_portal_across_syncs_between_other_connections", sb -> {
            Connection reader = sb.connect(), other = sb.connect();
            reader.setAutoCommit(false);
            long sum = 0, rows = 0;
            try (Statement s = reader.createStatement()) {
                s.setFetchSize(10);
                try (ResultSet rs = s.executeQuery("select g from generate_series(1, 100) g")) {
                    while (rs.next()) {
                        sum += rs.getLong(1);
                        rows++;
                        if (rows % 25 == 0) insert(other, "between " + rows);
                    }
                }
            }
            reader.commit();
            same(100L, rows, "rows read");
            same(5050L, sum, "sum of the rows");
            same(4L, scalar(other, "select count(*) from items"), "the other connection's rows");
        });
        CHECKS.put("j06_execute_batch_plain_and_rewritten", sb -> {
            for (String rewrite : List.of("false", "true")) {
                Properties props = new Properties();
                props.setProperty("reWriteBatchedInserts", rewrite);
                Connection c = sb.connect(props);
                try (PreparedStatement p = c.prepareStatement("insert into items(name, qty) values (?, ?)")) {
                    for (int i = 0; i < 50; i++) { p.setString(1, rewrite + i); p.setInt(2, i); p.addBatch(); }
                    int[] counts = p.executeBatch();
                    same(50, counts.length, "batch results");
                }
                same(rewrite.equals("false") ? 50L : 100L, scalar(c, "select count(*) from items"), "rows after the batch");
            }
        });
        CHECKS.put("j07_generated_keys_start_at_one_after_reset", sb -> {
            Connection c = sb.connect();
            try (PreparedStatement p = c.prepareStatement("insert into empty_table(v) values (?)", Statement.RETURN_GENERATED_KEYS)) {
                List<Integer> ids = new ArrayList<>();
                for (int i = 0; i < 3; i++) {
                    p.setInt(1, i);
                    p.executeUpdate();
                    try (ResultSet keys = p.getGeneratedKeys()) { keys.next(); ids.add(keys.getInt("id")); }
                }
                same(List.of(1, 2, 3), ids, "generated ids");
            }
        });
        CHECKS.put("j08_read_only_connection_refuses_writes", sb -> {
            Connection c = sb.connect(), other = sb.connect();
            c.setAutoCommit(false);
            c.setReadOnly(true);
            same("25006", sqlstate(() -> insert(c, "refused")), "write in a read-only transaction");
            c.rollback();
            insert(other, "other writes");
            c.setReadOnly(false);
            insert(c, "written");
            c.commit();
            same(List.of("other writes", "written"), names(other), "rows");
        });
        CHECKS.put("j09_listen_notify_and_pg_notify", sb -> {
            Connection listener = sb.connect(), sender = sb.connect();
            exec(listener, "listen jobs");
            sender.setAutoCommit(false);
            exec(sender, "notify jobs, 'statement'");
            exec(sender, "select pg_notify('jobs', 'function')");
            same(0, Optional.ofNullable(listener.unwrap(PGConnection.class).getNotifications(200)).map(n -> n.length).orElse(0),
                "notifications before the commit");
            sender.commit();
            List<String> got = new ArrayList<>();
            long until = System.currentTimeMillis() + 10_000;
            while (got.size() < 2 && System.currentTimeMillis() < until) {
                PGNotification[] ns = listener.unwrap(PGConnection.class).getNotifications(500);
                if (ns != null) for (PGNotification n : ns) got.add(n.getName() + ":" + n.getParameter());
            }
            same(List.of("jobs:statement", "jobs:function"), got, "notifications after the commit");
        });
        CHECKS.put("j10_copy_in_and_out", sb -> {
            Connection c = sb.connect();
            CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
            StringBuilder rows = new StringBuilder();
            for (int i = 0; i < 100; i++) rows.append("copied").append(i).append('\n');
            long in = copy.copyIn("copy items(name) from stdin", new ByteArrayInputStream(rows.toString().getBytes(StandardCharsets.UTF_8)));
            same(100L, in, "rows copied in");
            StringWriter out = new StringWriter();
            copy.copyOut("copy (select name from items order by id limit 2) to stdout", out);
            same("copied0\ncopied1\n", out.toString(), "rows copied out");
        });
        CHECKS.put("j11_cancel_a_long_statement", sb -> {
            Connection c = sb.connect();
            insert(c, "before");
            try (Statement s = c.createStatement()) {
                ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
                timer.schedule(() -> { try { s.cancel(); } catch (SQLException ignored) { } }, 500, TimeUnit.MILLISECONDS);
                long start = System.nanoTime();
                same("57014", sqlstate(() -> s.execute("select pg_sleep(30)")), "cancelled statement");
                check(System.nanoTime() - start < 10_000_000_000L, "the cancel took effect within 10 s");
                timer.shutdown();
            }
            same(List.of("before"), names(c), "rows after the cancel");
        });
        CHECKS.put("j12_metadata_lists_the_schema", sb -> {
            Connection c = sb.connect();
            DatabaseMetaData md = c.getMetaData();
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "items", null)) { while (rs.next()) columns.add(rs.getString("COLUMN_NAME")); }
            same(List.of("id", "name", "qty"), columns, "columns of items");
            same("PostgreSQL", md.getDatabaseProductName(), "product name");
        });
        CHECKS.put("j13_large_objects_in_a_transaction", sb -> {
            Connection c = sb.connect();
            c.setAutoCommit(false);
            LargeObjectManager lom = c.unwrap(PGConnection.class).getLargeObjectAPI();
            long oid = lom.createLO(LargeObjectManager.READWRITE);
            try (LargeObject lo = lom.open(oid, LargeObjectManager.WRITE)) { lo.write("hello".getBytes(StandardCharsets.UTF_8)); }
            c.commit();
            try (LargeObject lo = lom.open(oid, LargeObjectManager.READ)) { same("hello", new String(lo.read(5), StandardCharsets.UTF_8), "large object"); }
            c.commit();
        });
        CHECKS.put("j14_deferred_constraint_fails_the_commit", sb -> {
            Connection c = sb.connect();
            exec(c, "create table parent (id int primary key); create table child (p int references parent deferrable initially deferred)");
            c.setAutoCommit(false);
            exec(c, "insert into child values (1)");
            same("23503", sqlstate(c::commit), "commit of a deferred violation");
            c.setAutoCommit(true);
            exec(c, "truncate child, parent");
        });
        CHECKS.put("j15_statement_timeout_of_one_connection_only", sb -> {
            Connection c = sb.connect(), other = sb.connect();
            exec(c, "set statement_timeout = 200");
            same("57014", sqlstate(() -> exec(c, "select pg_sleep(5)")), "timed out statement");
            exec(other, "select pg_sleep(0.5)");
            same("0", new String(String.valueOf(scalar(c, "select 0"))), "the timed-out connection works");
        });
        CHECKS.put("j16_is_valid_and_a_second_connection_sees_the_first", sb -> {
            Connection a = sb.connect(), b = sb.connect();
            check(a.isValid(5), "isValid");
            a.setAutoCommit(false);
            insert(a, "uncommitted");
            same(List.of("uncommitted"), names(b), "rollback isolation: one transaction for the key");
            a.rollback();
        });
    }

    public static void main(String[] args) throws Exception {
        Class.forName("org.postgresql.Driver");
        String only = args.length > 0 ? args[0] : "";
        int passed = 0, failed = 0;
        for (Map.Entry<String, Check> entry : CHECKS.entrySet()) {
            if (!entry.getKey().startsWith(only)) continue;
            Sandbox sb = new Sandbox("java_" + entry.getKey().substring(0, 3));
            try {
                try (Connection c = sb.connect()) { exec(c, "select dbsandbox_reset()"); }
                sb.open.clear();
                entry.getValue().run(sb);
                System.out.println("ok " + entry.getKey());
                passed++;
            } catch (Throwable e) {
                System.out.println("not ok " + entry.getKey() + ": " + e);
                failed++;
            } finally {
                sb.closeAll();
            }
        }
        System.out.println("# pass " + passed + "\n# fail " + failed);
        System.exit(failed == 0 ? 0 : 1);
    }
}
