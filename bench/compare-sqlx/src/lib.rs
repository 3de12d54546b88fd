//! One realistic test scenario on schema40, shared by both suites of `tests/compare.rs`.
//!
//! Scenario `n` works on table `t{a}` and its child `t{a+1}` (`a = n % 39`) and asserts exact
//! results, with fixed unique names: the suites only pass when every test has its own database
//! state.

use sqlx::PgPool;

/// Runs scenario `n` (0..200) against `pool`, panicking on a wrong result.
pub async fn scenario(pool: &PgPool, n: u32) {
    let a = n % 39;
    let b = a + 1;
    let parent = format!("t{a}");
    let child = format!("t{b}");
    match n % 4 {
        // Insert a parent and two children in one committed transaction, then read them back.
        0 => {
            let mut tx = pool.begin().await.unwrap();
            let (id,): (i64,) = sqlx::query_as(&format!(
                "insert into {parent}(name, payload) values ('bench-parent', $1::jsonb) returning id"
            ))
            .bind(serde_json_payload(n))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            assert_eq!(
                id, 101,
                "{parent}'s sequence should start after the seed rows"
            );
            for name in ["bench-child-1", "bench-child-2"] {
                sqlx::query(&format!(
                    "insert into {child}(name, parent_id) values ($1, $2)"
                ))
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
            let (parents,): (i64,) = sqlx::query_as(&format!("select count(*) from {parent}"))
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(parents, 101);
            let (children,): (i64,) = sqlx::query_as(&format!(
                "select count(*) from {child} c join {parent} p on p.id = c.parent_id where p.name = 'bench-parent'"
            ))
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(children, 2);
        }
        // Update the payload of the first ten rows and aggregate over it.
        1 => {
            let done = sqlx::query(&format!(
                "update {parent} set payload = jsonb_build_object('score', id) where id <= 10"
            ))
            .execute(pool)
            .await
            .unwrap();
            assert_eq!(done.rows_affected(), 10);
            let (sum,): (Option<i64>,) = sqlx::query_as(&format!(
                "select sum((payload->>'score')::bigint)::bigint from {parent} where payload ? 'score'"
            ))
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(sum, Some(55));
        }
        // Insert a batch of parents and re-parent five children, in one committed transaction.
        2 => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&format!("insert into {parent}(name) values ('bench-batch-1'), ('bench-batch-2'), ('bench-batch-3')"))
                .execute(&mut *tx)
                .await
                .unwrap();
            let moved = sqlx::query(&format!(
                "update {child} set parent_id = (select id from {parent} where name = 'bench-batch-1') where id between 1 and 5"
            ))
            .execute(&mut *tx)
            .await
            .unwrap();
            assert_eq!(moved.rows_affected(), 5);
            tx.commit().await.unwrap();
            let (n_batch,): (i64,) = sqlx::query_as(&format!(
                "select count(*) from {parent} where name like 'bench-batch-%'"
            ))
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(n_batch, 3);
            let (adopted,): (i64,) = sqlx::query_as(&format!(
                "select count(*) from {child} c join {parent} p on p.id = c.parent_id where p.name = 'bench-batch-1'"
            ))
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(adopted, 5);
        }
        // Read-mostly: a join with a filter, then a rename of a fixed row checked by name.
        _ => {
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "select p.name, c.name from {parent} p join {child} c on c.parent_id = p.id where p.name like 'seed1%' order by p.id"
            ))
            .fetch_all(pool)
            .await
            .unwrap();
            // seed1, seed10..seed19, seed100
            assert_eq!(rows.len(), 12);
            let done = sqlx::query(&format!(
                "update {parent} set name = 'bench-renamed' where id = 1"
            ))
            .execute(pool)
            .await
            .unwrap();
            assert_eq!(done.rows_affected(), 1);
            let (renamed,): (i64,) = sqlx::query_as(&format!(
                "select count(*) from {parent} where name = 'bench-renamed'"
            ))
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(renamed, 1);
        }
    }
}

fn serde_json_payload(n: u32) -> String {
    format!("{{\"test\": {n}, \"tags\": [\"bench\", \"schema40\"]}}")
}
