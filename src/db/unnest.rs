//! Multi-row inserts on PostgreSQL as `INSERT INTO t (…) SELECT * FROM
//! unnest($1, $2, …)`: one array per column, so the statement's text is the
//! same whatever the number of rows. PostgreSQL parses and plans it once per
//! connection (diesel keeps it prepared, keyed by its text), where a
//! multi-row `VALUES` list is a new statement for every group size and is
//! parsed and planned on every call; and it has no parameter limit to chunk
//! around.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Double, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use crate::domain::Timestamp as Time;

/// One column's values, one per row.
pub enum Column<'a> {
    Text(Vec<&'a str>),
    NullableText(Vec<Option<&'a str>>),
    Bool(Vec<bool>),
    NullableDouble(Vec<Option<f64>>),
    BigInt(Vec<i64>),
    Timestamp(Vec<Time>),
    NullableTimestamp(Vec<Option<Time>>),
}

/// An insert of the rows whose columns are given, in the order named.
pub struct UnnestInsert<'a> {
    table: &'static str,
    columns: Vec<(&'static str, Column<'a>)>,
}

impl<'a> UnnestInsert<'a> {
    pub fn into(table: &'static str) -> UnnestInsert<'a> {
        UnnestInsert {
            table,
            columns: Vec::new(),
        }
    }

    /// Adds the column `name` with one value per row.
    pub fn column(mut self, name: &'static str, values: Column<'a>) -> Self {
        self.columns.push((name, values));
        self
    }

    /// Runs the insert; returns the number of rows written.
    pub fn execute(self, conn: &mut PgConnection) -> QueryResult<usize> {
        RunQueryDsl::execute(self, conn)
    }
}

impl QueryId for UnnestInsert<'_> {
    type QueryId = ();
    // Cached by the statement's text (the table and its columns).
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for UnnestInsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("INSERT INTO ");
        out.push_identifier(self.table)?;
        out.push_sql(" (");
        for (i, (name, _)) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(name)?;
        }
        out.push_sql(") SELECT * FROM unnest(");
        for (i, (_, values)) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            match values {
                Column::Text(v) => out.push_bind_param::<Array<Text>, _>(v)?,
                Column::NullableText(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(v)?,
                Column::Bool(v) => out.push_bind_param::<Array<Bool>, _>(v)?,
                Column::NullableDouble(v) => {
                    out.push_bind_param::<Array<Nullable<Double>>, _>(v)?
                }
                Column::BigInt(v) => out.push_bind_param::<Array<BigInt>, _>(v)?,
                Column::Timestamp(v) => out.push_bind_param::<Array<Timestamp>, _>(v)?,
                Column::NullableTimestamp(v) => {
                    out.push_bind_param::<Array<Nullable<Timestamp>>, _>(v)?
                }
            }
        }
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for UnnestInsert<'_> {}
