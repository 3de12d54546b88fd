//! Every corpus log, one test each: the exact classes, counts, first locations, tests and
//! extracted details `analyze` must report, and the clean near-miss logs that must yield nothing.

mod common;

use common::{analyze_corpus, assert_findings, class, Expect};

const FINDINGS: i32 = 1;
const CLEAN: i32 = 0;

#[test]
fn pytest_sqlalchemy_psycopg2_unique_fk_and_cascade() {
    let name = "pytest_sqlalchemy_psycopg2.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 20,
                test: Some("tests/test_accounts.py::test_register_user"),
                code: Some("sqlstate:23505"),
                constraint: Some("users_email_key"),
                table: Some("users"),
                key_columns: Some("email"),
                key_value: Some("alice@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "foreign-key-violation",
                count: 1,
                line: 55,
                test: Some("tests/test_orders.py::test_place_order"),
                code: Some("sqlstate:23503"),
                constraint: Some("orders_user_id_fkey"),
                table: Some("orders"),
                key_columns: Some("user_id"),
                key_value: Some("1"),
                referenced_table: Some("users"),
                ..Expect::default()
            },
            Expect {
                class: "aborted-transaction",
                count: 1,
                line: 71,
                test: Some("tests/test_orders.py::test_order_history"),
                code: Some("sqlstate:25P02"),
                ..Expect::default()
            },
        ],
    );
    // The unique violation is printed three times (driver, SQLAlchemy, summary): one failure.
    assert_eq!(
        class(&report, "unique-violation").unwrap()["matched_lines"],
        3
    );
    // 25P02 is a consequence of the foreign-key error before it, not a class of its own.
    let cascade = &class(&report, "aborted-transaction").unwrap()["occurrences"][0]["caused_by"];
    assert_eq!(cascade["class"], "foreign-key-violation");
    assert_eq!(cascade["line"], 55);
    assert_eq!(cascade["test"], "tests/test_orders.py::test_place_order");
    assert_eq!(
        class(&report, "foreign-key-violation").unwrap()["consequences"],
        1
    );
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["class"] != "aborted-transaction"));
}

#[test]
fn django_sqlite_no_such_table_and_unique() {
    let name = "django_sqlite_unittest.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "schema-drift",
                count: 1,
                line: 15,
                test: Some("billing.tests.test_invoices.InvoiceTests.test_create_invoice"),
                code: Some("sqlite:SQLITE_ERROR"),
                table: Some("billing_invoiceline"),
                ..Expect::default()
            },
            Expect {
                class: "unique-violation",
                count: 1,
                line: 31,
                test: Some("billing.tests.test_customers.CustomerTests.test_unique_customer_email"),
                code: Some("sqlite:SQLITE_CONSTRAINT_UNIQUE"),
                table: Some("billing_customer"),
                key_columns: Some("email"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn rails_rspec_pg_unique_fk_and_count_assertion() {
    let name = "rails_rspec_pg.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 13,
                test: Some("User.create rejects a second account with the same email"),
                code: Some("sqlstate:23505"),
                constraint: Some("index_users_on_email"),
                key_columns: Some("email"),
                key_value: Some("carol@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "foreign-key-violation",
                count: 1,
                line: 27,
                test: Some("Order belongs to a user"),
                code: Some("sqlstate:23503"),
                constraint: Some("fk_rails_f868b47f6a"),
                table: Some("orders"),
                key_columns: Some("user_id"),
                key_value: Some("1"),
                referenced_table: Some("users"),
                ..Expect::default()
            },
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 33,
                test: Some("Users API GET /users lists the one user"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn jest_prisma_p2002_p2024_and_length_assertion() {
    let name = "jest_prisma.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 16,
                test: Some(
                    "UsersService \u{203a} createUser \u{203a} rejects nothing for a fresh email",
                ),
                code: Some("prisma:P2002"),
                key_columns: Some("email"),
                ..Expect::default()
            },
            Expect {
                class: "connection-exhaustion",
                count: 1,
                line: 48,
                test: Some("Orders e2e \u{203a} handles 50 concurrent checkouts"),
                code: Some("prisma:P2024"),
                ..Expect::default()
            },
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 30,
                test: Some(
                    "UsersService \u{203a} listUsers \u{203a} returns only the created user",
                ),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn jest_typeorm_sequelize_knex_node_postgres_dumps() {
    let name = "jest_typeorm_sequelize_knex.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 4,
                test: Some(
                    "AccountsController \u{203a} POST /accounts \u{203a} creates an account",
                ),
                code: Some("sqlstate:23505"),
                constraint: Some("UQ_97672ac88f789774dd47f7c8be3"),
                table: Some("account"),
                key_columns: Some("email"),
                key_value: Some("frank@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "foreign-key-violation",
                count: 1,
                line: 34,
                test: Some("Comments \u{203a} attaches a comment to a post"),
                code: Some("sqlstate:23503"),
                constraint: Some("comments_post_id_fkey"),
                table: Some("comments"),
                key_columns: Some("post_id"),
                key_value: Some("42"),
                referenced_table: Some("posts"),
                ..Expect::default()
            },
            Expect {
                class: "connection-exhaustion",
                count: 1,
                line: 54,
                test: Some("Reports \u{203a} exports every report in parallel"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn go_pgx_and_lib_pq() {
    let name = "go_pgx_libpq.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 2,
                test: Some("TestCreateUser"),
                code: Some("sqlstate:23505"),
                constraint: Some("users_email_key"),
                ..Expect::default()
            },
            Expect {
                class: "deadlock",
                count: 1,
                line: 13,
                test: Some("TestTransferFunds"),
                code: Some("sqlstate:40P01"),
                ..Expect::default()
            },
            Expect {
                class: "schema-drift",
                count: 1,
                line: 18,
                test: Some("TestAuditLog"),
                code: Some("sqlstate:42P01"),
                table: Some("audit_log"),
                ..Expect::default()
            },
            Expect {
                class: "foreign-key-violation",
                count: 1,
                line: 20,
                test: Some("TestOrderForUnknownCustomer"),
                code: Some("sqlstate:23503"),
                constraint: Some("orders_customer_id_fkey"),
                table: Some("orders"),
                ..Expect::default()
            },
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 9,
                test: Some("TestListUsers"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn maven_hibernate_jdbc_hikari() {
    let name = "maven_hibernate_jdbc.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 5,
                test: Some("com.example.shop.UserRepositoryTest.savesUser"),
                code: Some("sqlstate:23505"),
                constraint: Some("users_email_key"),
                key_columns: Some("email"),
                key_value: Some("ivan@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "connection-exhaustion",
                count: 1,
                line: 24,
                test: Some("com.example.shop.CheckoutLoadTest.hundredParallelCheckouts"),
                database: Some("HikariPool-1"),
                ..Expect::default()
            },
            Expect {
                class: "serialization-failure",
                count: 1,
                line: 30,
                test: Some("com.example.shop.InventoryTest.reservesStock"),
                code: Some("sqlstate:40001"),
                ..Expect::default()
            },
        ],
    );
    // Hibernate's log line, the Spring exception, the PSQLException and the Surefire summary are
    // all the same failure of savesUser.
    assert_eq!(
        class(&report, "unique-violation").unwrap()["matched_lines"],
        6
    );
}

#[test]
fn cargo_sqlx_and_tokio_postgres() {
    let name = "cargo_sqlx_tokio_postgres.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 17,
                test: Some("users::tests::creates_user"),
                code: Some("sqlstate:23505"),
                constraint: Some("users_email_key"),
                table: Some("users"),
                key_columns: Some("email"),
                key_value: Some("judy@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "deadlock",
                count: 1,
                line: 28,
                test: Some("orders::tests::transfer"),
                code: Some("sqlstate:40P01"),
                table: Some("accounts"),
                ..Expect::default()
            },
            Expect {
                class: "connection-exhaustion",
                count: 1,
                line: 32,
                test: Some("orders::tests::bulk_import"),
                ..Expect::default()
            },
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 22,
                test: Some("users::tests::lists_users"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn mysql_codes_via_go_driver_and_cli() {
    let name = "mysql_mixed.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 2,
                test: Some("TestSignup"),
                code: Some("mysql:1062"),
                constraint: Some("users.email"),
                key_value: Some("kim@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "deadlock",
                count: 1,
                line: 5,
                test: Some("TestPayout"),
                code: Some("mysql:1213"),
                ..Expect::default()
            },
            Expect {
                class: "lock-timeout",
                count: 1,
                line: 8,
                test: Some("TestReserveSeat"),
                code: Some("mysql:1205"),
                ..Expect::default()
            },
            Expect {
                class: "schema-drift",
                count: 1,
                line: 11,
                test: Some("TestReport"),
                code: Some("mysql:1146"),
                table: Some("app_test.report_rows"),
                ..Expect::default()
            },
            Expect {
                class: "connection-exhaustion",
                count: 1,
                line: 14,
                test: Some("TestManyClients"),
                code: Some("mysql:1040"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn german_server_log_normalised_to_sqlstate() {
    let name = "postgres_server_de.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 2,
                code: Some("sqlstate:23505"),
                constraint: Some("kunden_email_key"),
                key_columns: Some("email"),
                key_value: Some("lena@example.de"),
                ..Expect::default()
            },
            Expect {
                class: "deadlock",
                count: 1,
                line: 9,
                code: Some("sqlstate:40P01"),
                ..Expect::default()
            },
            Expect {
                class: "foreign-key-violation",
                count: 1,
                line: 11,
                code: Some("sqlstate:23503"),
                constraint: Some("bestellungen_kunde_id_fkey"),
                table: Some("bestellungen"),
                key_columns: Some("kunde_id"),
                key_value: Some("99"),
                referenced_table: Some("kunden"),
                ..Expect::default()
            },
            Expect {
                class: "connection-exhaustion",
                count: 1,
                line: 13,
                code: Some("sqlstate:53300"),
                ..Expect::default()
            },
            Expect {
                class: "aborted-transaction",
                count: 1,
                line: 5,
                code: Some("sqlstate:25P02"),
                ..Expect::default()
            },
        ],
    );
    let cause = &class(&report, "aborted-transaction").unwrap()["occurrences"][0]["caused_by"];
    assert_eq!(cause["class"], "unique-violation");
    assert_eq!(cause["line"], 2);
}

#[test]
fn french_server_log_normalised_to_sqlstate() {
    let name = "postgres_server_fr.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 1,
                code: Some("sqlstate:23505"),
                constraint: Some("clients_email_key"),
                key_columns: Some("email"),
                key_value: Some("marie@example.fr"),
                ..Expect::default()
            },
            Expect {
                class: "schema-drift",
                count: 1,
                line: 4,
                code: Some("sqlstate:42P01"),
                table: Some("journal_audit"),
                ..Expect::default()
            },
            Expect {
                class: "statement-timeout",
                count: 1,
                line: 5,
                code: Some("sqlstate:57014"),
                ..Expect::default()
            },
            Expect {
                class: "database-in-use",
                count: 1,
                line: 6,
                code: Some("sqlstate:55006"),
                database: Some("app_modele"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn junit_surefire_attributes_failures_to_testcases() {
    let name = "junit_surefire.xml";
    let (code, report, stderr) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_eq!(stderr, "");
    assert_eq!(report["inputs"][0]["format"], "junit");
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 8,
                test: Some("com.example.shop.UserRepositoryTest.savesUser"),
                code: Some("sqlstate:23505"),
                constraint: Some("users_email_key"),
                key_columns: Some("email"),
                key_value: Some("ivan@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "foreign-key-violation",
                count: 1,
                line: 19,
                test: Some("com.example.shop.UserRepositoryTest.deletesUserWithOrders"),
                code: Some("sqlstate:23503"),
                constraint: Some("orders_user_id_fkey"),
                table: Some("users"),
                key_columns: Some("id"),
                key_value: Some("5"),
                referenced_table: Some("orders"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn junit_pytest_single_line_xml() {
    let name = "junit_pytest.xml";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "unique-violation",
                count: 1,
                line: 1,
                test: Some("tests.test_accounts.test_register_user"),
                code: Some("sqlstate:23505"),
                constraint: Some("users_email_key"),
                key_columns: Some("email"),
                key_value: Some("alice@example.com"),
                ..Expect::default()
            },
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 10,
                test: Some("tests.test_accounts.test_count_users"),
                ..Expect::default()
            },
        ],
    );
}

#[test]
fn junit_truncated_reports_what_was_read_and_warns() {
    let name = "junit_truncated.xml";
    let (code, report, stderr) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_eq!(
        stderr,
        "dbsandbox analyze: junit_truncated.xml: warning: JUnit XML is truncated: it ends at line 15 inside <system-out> (3 element(s) still open); findings up to there are reported\n"
    );
    assert_findings(
        name,
        &report,
        &[Expect {
            class: "unique-violation",
            count: 1,
            line: 8,
            test: Some("com.example.shop.UserRepositoryTest.savesUser"),
            code: Some("sqlstate:23505"),
            constraint: Some("users_email_key"),
            key_columns: Some("email"),
            key_value: Some("ivan@example.com"),
            ..Expect::default()
        }],
    );
}

#[test]
fn ansi_colours_are_stripped_before_matching() {
    let name = "pytest_ansi_color.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[Expect {
            class: "lock-timeout",
            count: 1,
            line: 10,
            test: Some("tests/test_jobs.py::test_claim_job"),
            code: Some("sqlstate:55P03"),
            table: Some("jobs"),
            ..Expect::default()
        }],
    );
    let excerpt = report["findings"][0]["occurrences"][0]["excerpt"]
        .as_str()
        .unwrap();
    assert!(
        !excerpt.contains('\u{1b}'),
        "excerpt keeps an escape: {excerpt:?}"
    );
}

#[test]
fn pytest_timeouts_serialization_pg16_slots_and_queuepool() {
    let name = "pytest_misc_pg.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "connection-exhaustion",
                count: 2,
                line: 30,
                test: Some("tests/test_pool.py::test_many_workers"),
                code: Some("sqlstate:53300"),
                ..Expect::default()
            },
            Expect {
                class: "statement-timeout",
                count: 1,
                line: 16,
                test: Some("tests/test_reports.py::test_monthly_report"),
                code: Some("sqlstate:57014"),
                ..Expect::default()
            },
            Expect {
                class: "serialization-failure",
                count: 1,
                line: 23,
                test: Some("tests/test_ledger.py::TestLedger::test_concurrent_post"),
                code: Some("sqlstate:40001"),
                ..Expect::default()
            },
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 44,
                test: Some("tests/test_counts.py::test_user_count"),
                ..Expect::default()
            },
        ],
    );
    let pool = class(&report, "connection-exhaustion").unwrap();
    assert_eq!(pool["occurrences"][1]["line"], 37);
    assert_eq!(
        pool["occurrences"][1]["test"],
        "tests/test_pool.py::test_pool_checkout"
    );
    assert_eq!(pool["occurrences"][1]["stack"], "sqlalchemy");
}

#[test]
fn shell_script_55006_53300_in_both_wordings_and_unittest_assertion() {
    let name = "ci_setup_shell.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "database-in-use",
                count: 2,
                line: 3,
                code: Some("sqlstate:55006"),
                database: Some("app_test"),
                ..Expect::default()
            },
            Expect {
                class: "connection-exhaustion",
                count: 2,
                line: 11,
                code: Some("sqlstate:53300"),
                ..Expect::default()
            },
            Expect {
                class: "schema-drift",
                count: 1,
                line: 9,
                code: Some("sqlstate:42P07"),
                table: Some("users"),
                ..Expect::default()
            },
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 21,
                test: Some("tests.test_customers.CustomerTests.test_one_customer"),
                ..Expect::default()
            },
        ],
    );
    let in_use = class(&report, "database-in-use").unwrap();
    assert_eq!(in_use["occurrences"][1]["database"], "app_template");
    let slots = class(&report, "connection-exhaustion").unwrap();
    assert_eq!(slots["occurrences"][1]["line"], 13);
    assert_eq!(slots["occurrences"][0]["stack"], "postgresql 15 and older");
}

#[test]
fn cascade_without_an_earlier_error_is_reported_unexplained() {
    let name = "go_testify_messages.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "leaked-rows-assertion",
                count: 1,
                line: 8,
                test: Some("TestInvoiceCount"),
                ..Expect::default()
            },
            Expect {
                class: "aborted-transaction",
                count: 1,
                line: 11,
                test: Some("TestRefund"),
                code: Some("sqlstate:25P02"),
                ..Expect::default()
            },
        ],
    );
    let cascade = class(&report, "aborted-transaction").unwrap();
    assert!(cascade["occurrences"][0]["caused_by"].is_null());
    assert_eq!(cascade["explained"], 0);
}

#[test]
fn clean_logs_full_of_near_misses_yield_nothing() {
    for name in [
        "clean_near_misses.log",
        "clean_migration.log",
        "clean_passing_suites.log",
    ] {
        let (code, report, stderr) = analyze_corpus(name);
        assert_eq!(
            report["findings"].as_array().unwrap().len(),
            0,
            "{name}: {report}"
        );
        assert_eq!(
            report["consequences"].as_array().unwrap().len(),
            0,
            "{name}"
        );
        assert_eq!(code, CLEAN, "{name}");
        assert_eq!(stderr, "", "{name}");
    }
}

#[test]
fn django_postgres_integrity_error_and_swallowed_cause() {
    let name = "django_pg_pytest.log";
    let (code, report, _) = analyze_corpus(name);
    assert_eq!(code, FINDINGS);
    assert_findings(
        name,
        &report,
        &[
            Expect {
                class: "foreign-key-violation",
                count: 1,
                line: 47,
                test: Some("shop/tests/test_checkout.py::CheckoutTests::test_first_order"),
                code: Some("sqlstate:23503"),
                constraint: Some("shop_order_customer_id_a1b2c3d4_fk_shop_customer_id"),
                table: Some("shop_order"),
                key_columns: Some("customer_id"),
                key_value: Some("1"),
                referenced_table: Some("shop_customer"),
                ..Expect::default()
            },
            Expect {
                class: "aborted-transaction",
                count: 1,
                line: 36,
                test: Some(
                    "shop/tests/test_signup.py::SignupTests::test_duplicate_username_rejected",
                ),
                code: Some("sqlstate:25P02"),
                ..Expect::default()
            },
        ],
    );
    // The test caught the IntegrityError itself, so the log never shows what aborted the
    // transaction: the consequence says so instead of blaming the foreign-key error after it.
    let cascade = class(&report, "aborted-transaction").unwrap();
    assert!(cascade["occurrences"][0]["caused_by"].is_null());
    assert_eq!(
        class(&report, "foreign-key-violation").unwrap()["consequences"],
        0
    );
}
