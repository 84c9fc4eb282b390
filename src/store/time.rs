//! How each backend stores an instant: SQLite as fixed-width UTC text, so that text order is time
//! order, and PostgreSQL as `timestamptz`.
//!
//! Statements written once for both backends bind these wrappers; each backend encodes them its way.

use chrono::{DateTime, Utc};
use sqlx::Type;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo};

use super::sqlite::{format_bucket, format_instant};

/// A window bound: whole seconds, like the bucket starts (`YYYY-MM-DDTHH:MM:SSZ` in SQLite).
pub(super) struct Bound(pub DateTime<Utc>);

/// A wall-clock instant such as `fetched_at`: microseconds (`YYYY-MM-DDTHH:MM:SS.ffffffZ` in SQLite).
pub(super) struct Instant(pub DateTime<Utc>);

impl Bound {
    fn sqlite_text(&self) -> String {
        format_bucket(self.0.timestamp())
    }
}

impl Instant {
    fn sqlite_text(&self) -> String {
        format_instant(self.0)
    }
}

macro_rules! stored_time {
    ($ty:ident) => {
        impl Type<Sqlite> for $ty {
            fn type_info() -> SqliteTypeInfo {
                <String as Type<Sqlite>>::type_info()
            }
        }

        impl<'q> Encode<'q, Sqlite> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<SqliteArgumentValue<'q>>,
            ) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, Sqlite>>::encode(self.sqlite_text(), buf)
            }
        }

        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <DateTime<Utc> as Type<Postgres>>::type_info()
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
            }

            fn size_hint(&self) -> usize {
                <DateTime<Utc> as Encode<'_, Postgres>>::size_hint(&self.0)
            }
        }
    };
}

stored_time!(Bound);
stored_time!(Instant);
