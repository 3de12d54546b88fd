//! Which listed test a JUnit `<testcase>` stands for (`--failed-from`), whatever wrote the report:
//! pytest (`classname="tests.test_a"`, `name="test_x"` for `tests/test_a.py::test_x`), jest-junit
//! (`name="users creates a user"` for `src/users.test.js::users > creates a user`), Vitest,
//! go-junit-report and gotestsum (`classname` = import path), cargo2junit (`classname="tests"`,
//! `name="fails"` for `…::tests::fails`), nextest (`classname` = binary id), Surefire and Gradle
//! (`classname="com.x.FooTest"`, `name="testBar"`), and this adapter's own `classname::name` ids.
//!
//! Both sides are cut into words at the separators runners use (`::`, ` > `, `/`, `.`, `#`,
//! spaces; a source file's extension dropped). A listed id matches when it ends with the case's
//! name; among those, the one whose earlier words hold most of the classname's (from its end, in
//! order) wins, then the one with fewest other words; a tie means no match rather than a guess.

use crate::model::TestId;

/// Source file extensions that appear in ids (`test_a.py::…`) but not in classnames.
const SOURCE_EXTENSIONS: &[&str] = &[
    "py", "js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx", "go", "rs", "java", "kt", "rb",
    "php", "cs", "exs",
];

/// The listed test a JUnit case stands for, or `None` when none (or more than one) fits.
pub fn match_junit_case(listed: &[TestId], classname: &str, name: &str) -> Option<TestId> {
    if name.is_empty() {
        return None;
    }
    for exact in [format!("{classname}::{name}"), name.to_string()] {
        if listed.contains(&exact) {
            return Some(exact);
        }
    }
    let name_words = words(name);
    let class_words = words(classname);
    // (classname words held, minus the words among them the classname does not name):
    // `test_b.py::test_x` over `test_b.py::TestUsers::test_x` for classname `tests.test_b`. Words
    // before the first one held do not count: ids often start with what classnames leave out
    // (a path's root, a cargo binary).
    let mut best: Option<((usize, isize), &TestId)> = None;
    let mut tied = false;
    for id in listed {
        let id_words = words(id);
        if id_words.len() < name_words.len() || !id_words.ends_with(&name_words) {
            continue;
        }
        let before = &id_words[..id_words.len() - name_words.len()];
        let (held, first_held) = class_words_held(before, &class_words);
        let unnamed = before.len() - first_held - held;
        let score = (held, -(unnamed as isize));
        match best {
            Some((top, _)) if score < top => {}
            Some((top, _)) if score == top => tied = true,
            _ => {
                best = Some((score, id));
                tied = false;
            }
        }
    }
    match best {
        Some((_, id)) if !tied => Some(id.clone()),
        _ => None,
    }
}

/// How many of the classname's words, from its last one back, appear in that order in `before`,
/// and where the earliest of them is (`before.len()` when none is).
fn class_words_held(before: &[String], class_words: &[String]) -> (usize, usize) {
    let mut held = 0;
    let mut rest = before;
    for word in class_words.iter().rev() {
        match rest.iter().rposition(|w| w == word) {
            Some(at) => {
                held += 1;
                rest = &rest[..at];
            }
            None => break,
        }
    }
    let first_held = if held == 0 { before.len() } else { rest.len() };
    (held, first_held)
}

fn words(text: &str) -> Vec<String> {
    let mut text = text.replace("::", "\u{0}").replace(" > ", "\u{0}");
    for ext in SOURCE_EXTENSIONS {
        let dotted = format!(".{ext}");
        text = text.replace(&format!("{dotted}\u{0}"), "\u{0}");
        if text.ends_with(&dotted) {
            text.truncate(text.len() - dotted.len());
        }
    }
    text.split(['\u{0}', '/', '.', '#', ' '])
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<TestId> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn matched(listed: &[TestId], classname: &str, name: &str) -> Option<String> {
        match_junit_case(listed, classname, name)
    }

    #[test]
    fn pytest_junitxml() {
        let listed = ids(&[
            "tests/test_a.py::test_x",
            "tests/test_b.py::test_x",
            "tests/test_b.py::TestUsers::test_x",
            "tests/test_b.py::test_p[1.5-a b]",
        ]);
        let found = |c, n| matched(&listed, c, n);
        assert_eq!(
            found("tests.test_a", "test_x").as_deref(),
            Some("tests/test_a.py::test_x")
        );
        assert_eq!(
            found("tests.test_b", "test_x").as_deref(),
            Some("tests/test_b.py::test_x")
        );
        assert_eq!(
            found("tests.test_b.TestUsers", "test_x").as_deref(),
            Some("tests/test_b.py::TestUsers::test_x")
        );
        assert_eq!(
            found("tests.test_b", "test_p[1.5-a b]").as_deref(),
            Some("tests/test_b.py::test_p[1.5-a b]")
        );
        // Two files, no classname to choose: no guess.
        assert_eq!(found("", "test_x"), None);
        assert_eq!(found("tests.test_a", "test_z"), None);
        assert_eq!(
            found("whatever", "TestUsers::test_x").as_deref(),
            Some("tests/test_b.py::TestUsers::test_x")
        );
    }

    #[test]
    fn jest_junit_and_vitest() {
        let listed = ids(&[
            "src/users.test.js::users > creates a user",
            "src/orders.test.js::orders > creates a user",
            "src/a.test.ts::suite > x",
        ]);
        // jest-junit's defaults: classname and name are both "{describe} {title}".
        assert_eq!(
            matched(&listed, "users creates a user", "users creates a user").as_deref(),
            Some("src/users.test.js::users > creates a user")
        );
        // Vitest: classname is the file, name the describe path.
        assert_eq!(
            matched(&listed, "src/a.test.ts", "suite > x").as_deref(),
            Some("src/a.test.ts::suite > x")
        );
    }

    #[test]
    fn go_cargo_nextest_and_surefire() {
        let listed = ids(&[
            "example.com/m/users::TestCreate",
            "example.com/m/orders::TestCreate",
            "app::users::tests::fails",
            "app::tests::fails",
            "com.x.FooTest::testBar",
        ]);
        let found = |c, n| matched(&listed, c, n);
        assert_eq!(
            found("example.com/m/orders", "TestCreate").as_deref(),
            Some("example.com/m/orders::TestCreate")
        );
        // cargo2junit: the module path is the classname, the last segment the name.
        assert_eq!(
            found("users::tests", "fails").as_deref(),
            Some("app::users::tests::fails")
        );
        // nextest: the binary id is the classname.
        assert_eq!(
            found("app::users", "tests::fails").as_deref(),
            Some("app::users::tests::fails")
        );
        assert_eq!(
            found("tests", "fails"),
            None,
            "two binaries have tests::fails"
        );
        assert_eq!(
            found("com.x.FooTest", "testBar").as_deref(),
            Some("com.x.FooTest::testBar")
        );
    }
}
