//! PostgreSQL's binary `COPY` format, written by hand: the fastest way to hand it many rows.

use chrono::{DateTime, Utc};

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_SECS: i64 = 946_684_800;

/// Writes PostgreSQL's binary `COPY` format: a header, then per row a field count and each field as
/// a length and its big-endian bytes, then a trailer.
pub struct CopyEncoder {
    buf: Vec<u8>,
}

impl CopyEncoder {
    /// The signature, a flags word and an empty header extension.
    const HEADER: &'static [u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + Self::HEADER.len() + 2);
        buf.extend_from_slice(Self::HEADER);
        CopyEncoder { buf }
    }

    pub fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    pub fn int8(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn float8(&mut self, v: f64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(v));
    }

    /// A `timestamptz` from whole seconds since the Unix epoch: microseconds since 2000-01-01.
    pub fn timestamptz_secs(&mut self, secs: i64) {
        self.int8((secs - PG_EPOCH_SECS) * 1_000_000);
    }

    pub fn timestamptz(&mut self, t: DateTime<Utc>) {
        self.int8(t.timestamp_micros() - PG_EPOCH_SECS * 1_000_000);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn copy_format_is_byte_exact() {
        let mut enc = CopyEncoder::with_capacity(0);
        enc.row(4);
        enc.int8(7);
        enc.timestamptz_secs(PG_EPOCH_SECS + 1);
        enc.float8(1.5);
        enc.bool(true);
        let bytes = enc.finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]); // 1,000,000 us
        expected.extend_from_slice(&[0, 0, 0, 8, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]); // 1.5
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        let at = |t: DateTime<Utc>| {
            let mut enc = CopyEncoder::with_capacity(0);
            enc.timestamptz(t);
            let b = enc.finish();
            i64::from_be_bytes(b[CopyEncoder::HEADER.len() + 4..][..8].try_into().unwrap())
        };
        assert_eq!(at(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()), 0);
        assert_eq!(
            at(Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap()),
            -1_000_000
        );
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(at(t), (1_700_000_000 - PG_EPOCH_SECS) * 1_000_000 + 123_456);
    }
}
