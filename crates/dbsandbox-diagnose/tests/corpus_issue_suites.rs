//! Corpus logs of real-suite shapes (Django's runner and pytest-django, Jest with jest-junit,
//! Vitest, RSpec, go test, cargo test, a CI step outside tests): every database error is a
//! finding with its SQLSTATE and test, causes within one SQLSTATE are told apart, count and
//! seeded-value assertions are found, and the fix names the runner's integration line.

mod common;

use common::{
    analyze_corpus_human, analyze_corpus_showing, class, classes, occurrences_of, Expect,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const UNCLASSIFIED: &str = "unclassified-database-error";
const ASSERTION: &str = "leaked-rows-assertion";

fn analyze(name: &str) -> Value {
    let (code, report, _) = analyze_corpus_showing(name, 20);
    assert_eq!(code, 1, "{name}: exit code");
    report
}

/// The occurrences of `id` are exactly these `(test, code)` pairs, in log order.
fn assert_occurrences(report: &Value, id: &str, expected: &[(&str, &str)]) {
    let actual = occurrences_of(report, id);
    let wanted: Vec<(Option<String>, Option<String>)> = expected
        .iter()
        .map(|(t, c)| (Some(t.to_string()), (!c.is_empty()).then(|| c.to_string())))
        .collect();
    assert_eq!(actual, wanted, "{id} occurrences");
    assert_eq!(
        class(report, id).unwrap()["count"].as_u64(),
        Some(expected.len() as u64)
    );
}

fn assert_absent(report: &Value, wrong: &[&str]) {
    let found = classes(report);
    for id in wrong {
        assert!(
            !found.iter().any(|c| c == id),
            "{id} must not be reported: {found:?}"
        );
    }
}

fn integration_runner(report: &Value, id: &str) -> String {
    class(report, id).unwrap()["integration"]["runner"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The twelve SQLSTATE classes tests meet, one test each, in the order the class logs print them.
const CLASS_CODES: [&str; 12] = [
    "sqlstate:08P01",
    "sqlstate:22012",
    "sqlstate:23514",
    "sqlstate:25006",
    "sqlstate:34000",
    "sqlstate:40003",
    "sqlstate:42883",
    "sqlstate:53100",
    "sqlstate:55000",
    "sqlstate:57P01",
    "sqlstate:58P01",
    "sqlstate:XX000",
];

#[test]
fn django_runner_parallel_cursor_pending_triggers_unmigrated_clone_and_count() {
    let name = "django_runner_parallel_psycopg3.log";
    let report = analyze(name);
    assert_eq!(
        classes(&report),
        [
            UNCLASSIFIED,
            "pending-trigger-events",
            "unmigrated-database",
            ASSERTION
        ]
    );
    // Four InvalidCursorName failures are never "no database failure found".
    assert_occurrences(
        &report,
        UNCLASSIFIED,
        &[
            (
                "catalog.tests.test_export.ExportTests.test_export_iterates_all_products",
                "sqlstate:34000",
            ),
            (
                "catalog.tests.test_export.ExportTests.test_export_streams_large_catalogue",
                "sqlstate:34000",
            ),
            (
                "catalog.tests.test_feed.FeedTests.test_feed_pagination",
                "sqlstate:34000",
            ),
            (
                "catalog.tests.test_sitemap.SitemapTests.test_sitemap_lists_products",
                "sqlstate:34000",
            ),
            (
                "orders.tests.test_report.ReportTests.test_average_basket",
                "sqlstate:22012",
            ),
            (
                "orders.tests.test_nightly.NightlyTests.test_nightly_export",
                "sqlstate:57P01",
            ),
        ],
    );
    let unclassified = class(&report, UNCLASSIFIED).unwrap();
    let cursor = &unclassified["sqlstates"][0];
    assert_eq!(cursor["code"], "sqlstate:34000");
    assert_eq!(cursor["condition"], "invalid_cursor_name");
    assert_eq!(cursor["class"], "34");
    assert_eq!(cursor["class_title"], "Invalid Cursor Name");
    assert_eq!(cursor["count"], 4);
    assert!(cursor["note"].as_str().unwrap().contains("_django_curs_"));
    // 55006 with `pending trigger events` is not "database in use".
    common::assert_findings(
        name,
        &report,
        &[
            Expect {
                class: UNCLASSIFIED,
                count: 6,
                line: 37,
                test: Some(
                    "catalog.tests.test_export.ExportTests.test_export_iterates_all_products",
                ),
                code: Some("sqlstate:34000"),
                ..Expect::default()
            },
            Expect {
                class: "pending-trigger-events",
                count: 1,
                line: 140,
                test: Some("catalog.tests.test_reprice.RepriceTests.test_bulk_reprice"),
                code: Some("sqlstate:55006"),
                table: Some("catalog_pricechange"),
                ..Expect::default()
            },
            Expect {
                class: "unmigrated-database",
                count: 1,
                line: 174,
                test: Some("orders.tests.test_totals.TotalsTests.test_order_totals"),
                code: Some("sqlstate:42P01"),
                table: Some("orders_order"),
                ..Expect::default()
            },
            Expect {
                class: ASSERTION,
                count: 1,
                line: 162,
                test: Some("catalog.tests.test_listing.ListingTests.test_listing_counts"),
                ..Expect::default()
            },
        ],
    );
    assert_absent(&report, &["database-in-use", "schema-drift"]);
    let unmigrated = class(&report, "unmigrated-database").unwrap();
    let note = unmigrated["notes"][0].as_str().unwrap();
    assert!(
        note.contains("Django app orders, migrated at line 12"),
        "{note}"
    );
    assert!(
        note.contains("never migrated or was cloned from an empty template"),
        "{note}"
    );
    // Django's runner has no plugin: the fix is the in-band reset, not `dbsandbox run` alone.
    assert_eq!(unclassified["runner"], "unittest");
    assert_eq!(
        integration_runner(&report, "pending-trigger-events"),
        "unittest"
    );
    let human = analyze_corpus_human(name);
    assert!(human.contains("SQLSTATE 34000 invalid_cursor_name \u{2014} class 34 \u{201c}Invalid Cursor Name\u{201d} (4 occurrences)"), "{human}");
    assert!(human.contains("SELECT dbsandbox_reset()"), "{human}");
    assert!(!human.contains("Database still in use"), "{human}");
}

#[test]
fn pytest_django_psycopg2_unknown_codes_seeded_price_and_exists() {
    let name = "pytest_django_psycopg2_classes.log";
    let report = analyze(name);
    assert_eq!(classes(&report), [UNCLASSIFIED, ASSERTION]);
    assert_occurrences(
        &report,
        UNCLASSIFIED,
        &[
            (
                "catalog/tests/test_models.py::test_negative_price_rejected",
                "sqlstate:23514",
            ),
            (
                "catalog/tests/test_routers.py::test_replica_router_sends_writes_to_primary",
                "sqlstate:25006",
            ),
            (
                "catalog/tests/test_search.py::test_slug_uses_unaccent",
                "sqlstate:42883",
            ),
            (
                "catalog/tests/test_import.py::test_prepared_import",
                "sqlstate:08P01",
            ),
            (
                "catalog/tests/test_bulk.py::test_bulk_create_100k",
                "sqlstate:53100",
            ),
            (
                "catalog/tests/test_types.py::test_enum_type_roundtrip",
                "sqlstate:XX000",
            ),
            (
                "catalog/tests/test_vector.py::test_vector_search",
                "sqlstate:58P01",
            ),
        ],
    );
    // A seeded value and an exists/absent check; the DB error's `>` source line is not one.
    assert_occurrences(
        &report,
        ASSERTION,
        &[
            ("catalog/tests/test_seed.py::test_seeded_widget_price", ""),
            (
                "orders/tests/test_customers.py::test_deleted_customer_is_gone",
                "",
            ),
        ],
    );
    assert_absent(&report, &["unique-violation", "schema-drift"]);
    let integration = &class(&report, ASSERTION).unwrap()["integration"];
    assert_eq!(integration["name"], "pytest-dbsandbox");
    assert!(integration["line"]
        .as_str()
        .unwrap()
        .contains("dbsandbox_autoreset = true"));
    assert!(integration["not_enough"]
        .as_str()
        .unwrap()
        .contains("`default` key"));
}

#[test]
fn jest_junit_knex_counts_seeded_prices_lengths_diffs_and_no_doubled_names() {
    let name = "jest_junit_knex.xml";
    let report = analyze(name);
    assert_eq!(
        classes(&report),
        [UNCLASSIFIED, "unique-violation", ASSERTION]
    );
    // Every failing assertion of the shared-database run is found; names are not doubled.
    assert_occurrences(
        &report,
        ASSERTION,
        &[
            ("products starts with the two seeded products", ""),
            ("products keeps the seeded price of the widget", ""),
            ("products lists the seeded catalogue", ""),
            ("products returns the widget by sku", ""),
            ("users deletes the account", ""),
        ],
    );
    let tests = class(&report, ASSERTION).unwrap()["tests"].to_string();
    assert!(
        !tests.contains("users responds 404"),
        "an HTTP status is no row count: {tests}"
    );
    assert!(!tests.contains("products.products"), "{tests}");
    // knex prints no code: the server's message names it.
    assert_occurrences(
        &report,
        UNCLASSIFIED,
        &[
            ("exports streams orders with a cursor", "sqlstate:34000"),
            ("exports averages an empty shop", "sqlstate:22012"),
            ("exports writes through the replica", "sqlstate:25006"),
        ],
    );
    // knex prints no DETAIL line: say so and what to do, never "the DETAIL line names the key".
    let unique = class(&report, "unique-violation").unwrap();
    assert_eq!(
        unique["occurrences"][0]["test"],
        "users rejects a duplicate email"
    );
    assert_eq!(unique["occurrences"][0]["constraint"], "users_email_key");
    let note = unique["notes"][0].as_str().unwrap();
    assert!(note.starts_with("This log has no DETAIL line"), "{note}");
    assert!(note.contains("err.detail"), "{note}");
    assert!(!unique["diagnosis"]
        .as_str()
        .unwrap()
        .contains("The DETAIL line names the key"));
    assert_eq!(unique["runner"], "jest");
    assert!(unique["integration"]["line"]
        .as_str()
        .unwrap()
        .contains("setup({ beforeEach, afterAll })"));
    let human = analyze_corpus_human(name);
    assert!(
        human.contains("The one line (jest, @dbsandbox/node)"),
        "{human}"
    );
    assert!(
        human.contains("Note: This log has no DETAIL line"),
        "{human}"
    );
}

#[test]
fn vitest_node_postgres_every_class_and_count_assertions() {
    let name = "vitest_node_postgres_classes.log";
    let report = analyze(name);
    assert_eq!(classes(&report), [UNCLASSIFIED, ASSERTION]);
    let tests = [
        "tests/import.test.ts > import > inserts a batch with binds",
        "tests/report.test.ts > report > averages an empty shop",
        "tests/products.test.ts > products > rejects a negative price",
        "tests/replica.test.ts > replica > routes writes to the primary",
        "tests/orders.test.ts > orders > streams with a cursor",
        "tests/checkout.test.ts > checkout > retries a rolled back transaction",
        "tests/users.test.ts > users > creates a uuid key",
        "tests/bulk.test.ts > bulk > copies 100k rows",
        "tests/ids.test.ts > ids > reads the last id",
        "tests/report.test.ts > report > builds the yearly report",
        "tests/search.test.ts > search > finds similar products",
        "tests/catalog.test.ts > catalog > loads enum types",
    ];
    let expected: Vec<(&str, &str)> = tests.iter().copied().zip(CLASS_CODES).collect();
    assert_occurrences(&report, UNCLASSIFIED, &expected);
    assert_occurrences(
        &report,
        ASSERTION,
        &[
            (
                "tests/orders.test.ts > orders > counts the seeded orders",
                "",
            ),
            (
                "tests/orders.test.ts > orders > lists the seeded orders",
                "",
            ),
        ],
    );
    assert_eq!(integration_runner(&report, ASSERTION), "vitest");
}

#[test]
fn rspec_ruby_pg_every_class_count_and_absent_record() {
    let name = "rspec_pg_sqlstate_classes.log";
    let report = analyze(name);
    assert_eq!(classes(&report), [UNCLASSIFIED, ASSERTION]);
    let tests = [
        "Orders::Import imports a batch with bind parameters",
        "Reports::Average returns 0 for a shop without orders",
        "Product validations rejects a negative price at the database",
        "Replica routing writes go to the primary",
        "Exports::Csv streams every order in batches",
        "Checkout retries a rolled back transaction",
        "User generates a uuid primary key",
        "Imports::Bulk loads 100k rows",
        "Order numbering uses the last inserted id",
        "Reports::Yearly builds the yearly report",
        "Search::Similar finds similar products",
        "Catalog type map loads custom enum types",
    ];
    // ruby-pg's PG::TransactionRollback is the class's generic 40000.
    let mut codes = CLASS_CODES;
    codes[5] = "sqlstate:40000";
    let expected: Vec<(&str, &str)> = tests.iter().copied().zip(codes).collect();
    assert_occurrences(&report, UNCLASSIFIED, &expected);
    assert_occurrences(
        &report,
        ASSERTION,
        &[
            (
                "Products API GET /products lists the two seeded products",
                "",
            ),
            ("Accounts deletes the account and its sessions", ""),
        ],
    );
    assert_eq!(integration_runner(&report, ASSERTION), "rspec");
}

#[test]
fn go_pgx_every_class_and_lib_pq_without_a_code() {
    let name = "go_pgx_sqlstate_classes.log";
    let report = analyze(name);
    assert_eq!(classes(&report), [UNCLASSIFIED]);
    let tests = [
        "TestImportBatch",
        "TestAverageOrderValue",
        "TestNegativePriceRejected",
        "TestReplicaReads",
        "TestStreamOrders",
        "TestRetryOnRollback",
        "TestCreateUserUUID",
        "TestBulkLoad",
        "TestLastInsertID",
        "TestLongReport",
        "TestEmbeddings",
        "TestTypeCache",
    ];
    let mut expected: Vec<(&str, &str)> = tests.iter().copied().zip(CLASS_CODES).collect();
    // lib/pq prints `pq: <message>` only; the message names the code.
    expected.push(("TestLegacyCursor", "sqlstate:34000"));
    assert_occurrences(&report, UNCLASSIFIED, &expected);
    assert_eq!(integration_runner(&report, UNCLASSIFIED), "go");
}

#[test]
fn cargo_sqlx_and_tokio_postgres_every_class_and_assertions() {
    let name = "cargo_sqlx_tokio_sqlstate_classes.log";
    let report = analyze(name);
    assert_eq!(classes(&report), [UNCLASSIFIED, ASSERTION]);
    let tests = [
        "import::tests::batch_insert",
        "report::tests::average_of_empty_shop",
        "products::tests::negative_price_is_rejected",
        "replica::tests::writes_go_to_primary",
        "export::tests::streams_in_batches",
        "checkout::tests::retries_rolled_back",
        "users::tests::uuid_primary_key",
        "bulk::tests::loads_many_rows",
        "ids::tests::last_insert_id",
        "report::tests::yearly",
        "search::tests::similar",
        "catalog::tests::type_map",
    ];
    let expected: Vec<(&str, &str)> = tests.iter().copied().zip(CLASS_CODES).collect();
    assert_occurrences(&report, UNCLASSIFIED, &expected);
    assert_occurrences(
        &report,
        ASSERTION,
        &[
            ("users::tests::count_after_signup", ""),
            ("users::tests::deleted_user_is_gone", ""),
        ],
    );
    let integration = &class(&report, ASSERTION).unwrap()["integration"];
    assert_eq!(integration["name"], "#[dbsandbox::test]");
}

#[test]
fn database_errors_outside_any_test_are_said_to_be_unattributed() {
    let name = "ci_migrate_step_no_tests.log";
    let report = analyze(name);
    assert_eq!(classes(&report), [UNCLASSIFIED]);
    let occurrences = occurrences_of(&report, UNCLASSIFIED);
    assert_eq!(
        occurrences,
        [
            (None, Some("sqlstate:42501".to_string())),
            (None, Some("sqlstate:22001".to_string())),
        ]
    );
    assert_eq!(report["attribution"]["database_errors"], 2);
    assert_eq!(report["attribution"]["attributed_to_tests"], 0);
    // A privilege error and a too-long value are not cured by per-test isolation: no
    // integration line is offered for them.
    assert_eq!(
        class(&report, UNCLASSIFIED).unwrap()["integration"],
        Value::Null
    );
    let note = report["attribution"]["note"].as_str().unwrap();
    assert!(
        note.starts_with("None of the 2 database errors is attributed to a test"),
        "{note}"
    );
    let human = analyze_corpus_human(name);
    assert!(
        human.contains("Note: None of the 2 database errors is attributed to a test"),
        "{human}"
    );
}

#[test]
fn an_input_whose_database_errors_no_test_is_named_for_is_named() {
    let tested = common::corpus("go_pgx_sqlstate_classes.log");
    let untested = common::corpus("ci_migrate_step_no_tests.log");
    let (code, report, _) =
        common::analyze_json(&[("go.log", &tested), ("migrate.log", &untested)]);
    assert_eq!(code, 1);
    assert_eq!(report["inputs"][0]["database_errors"], 13);
    assert_eq!(report["inputs"][0]["attributed_to_tests"], 13);
    assert_eq!(report["inputs"][1]["database_errors"], 2);
    assert_eq!(report["inputs"][1]["attributed_to_tests"], 0);
    let note = report["attribution"]["note"].as_str().unwrap();
    assert!(
        note.starts_with(
            "2 of 15 database errors are not attributed to a test; in migrate.log none is"
        ),
        "{note}"
    );
}

/// Which driver printed the errors of each class log, and the codes it printed them with.
#[test]
fn every_sqlstate_class_tests_meet_is_recognised_through_at_least_three_drivers() {
    let logs = [
        ("go_pgx_sqlstate_classes.log", "pgx"),
        ("rspec_pg_sqlstate_classes.log", "ruby-pg"),
        (
            "cargo_sqlx_tokio_sqlstate_classes.log",
            "sqlx/tokio-postgres",
        ),
        ("vitest_node_postgres_classes.log", "node-postgres"),
        ("pytest_django_psycopg2_classes.log", "psycopg2"),
        ("django_runner_parallel_psycopg3.log", "psycopg 3"),
        ("jest_junit_knex.xml", "knex"),
    ];
    let mut drivers: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (log, driver) in logs {
        let report = analyze(log);
        for (_, code) in occurrences_of(&report, UNCLASSIFIED) {
            let code = code.unwrap_or_else(|| panic!("{log}: an occurrence without a code"));
            let class = code.trim_start_matches("sqlstate:")[..2].to_string();
            drivers.entry(class).or_default().insert(driver);
        }
    }
    for class in [
        "08", "22", "23", "25", "34", "40", "42", "53", "55", "57", "58", "XX",
    ] {
        let seen = drivers.get(class).cloned().unwrap_or_default();
        assert!(seen.len() >= 3, "class {class} only through {seen:?}");
    }
}
